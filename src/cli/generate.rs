//! `tolk completions SHELL` and `tolk man`: shell completion scripts and manual pages, generated
//! from the same clap definition that parses the command line, so they never fall behind it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Options of `tolk completions`.
#[derive(Debug, Args)]
#[command(after_help = "\
Install, for example:
  bash: tolk completions bash > ~/.local/share/bash-completion/completions/tolk
  zsh:  tolk completions zsh > ~/.zfunc/_tolk   (with fpath+=(~/.zfunc) before compinit)
  fish: tolk completions fish > ~/.config/fish/completions/tolk.fish")]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Options of `tolk man`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tolk man | man -l -
  tolk man --dir ~/.local/share/man/man1 && man tolk-batch")]
pub struct ManArgs {
    /// Write one page per command (tolk.1, tolk-translate.1, tolk-models-fetch.1, ...) into this
    /// directory, created if needed, and print their paths; without it, print the page of `tolk`
    /// itself to standard output.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `tolk completions`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "tolk", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `tolk man`.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        write_stdout(&page)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cmd, &dir, &mut written)?;
    let list: String = written
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    write_stdout(list.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd` and of each of its visible subcommands, recursively (a built command names
/// its subcommands `tolk-models-fetch` and so on).
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    tolk::fsutil::write_atomic(&path, &page)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}
