//! deploy/: the Kubernetes Job (parsed as YAML), the Slurm script and the Dockerfile. The shell
//! parts are run for real, with a fake `tolk` (and `srun`) on the PATH that exits with each
//! status tolk batch can give, so what is checked is what a cluster would do with it.
//!
//! `deploy/slurm/test-local.sh` runs the Slurm script on a real single-node Slurm instead (by
//! hand: it installs packages).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn job() -> Yaml {
    let docs = YamlLoader::load_from_str(&read("deploy/kubernetes/tolk-batch-job.yaml")).unwrap();
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

fn tolk_container(job: &Yaml) -> &Yaml {
    job["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("tolk"))
        .expect("a container named tolk")
}

/// The container's environment variables that have a plain value.
fn env_values(container: &Yaml) -> HashMap<String, String> {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A folder with executables `tolk` (and `srun`) that record their arguments in files and exit
/// with `$FAKE_STATUS`.
struct FakeBin {
    dir: tempfile::TempDir,
}

impl FakeBin {
    fn new() -> FakeBin {
        let dir = tempfile::tempdir().unwrap();
        let bin = FakeBin { dir };
        bin.script(
            "tolk",
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$FAKE_DIR/tolk.args\"\nexit \"$FAKE_STATUS\"\n",
        );
        // Records its options, then runs the command after them, as srun runs a step.
        bin.script(
            "srun",
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$FAKE_DIR/srun.args\"\n\
             while [ $# -gt 0 ]; do\n  case \"$1\" in\n    -c|--cpus-per-task) shift 2 ;;\n    -*) shift ;;\n    *) break ;;\n  esac\ndone\n\
             exec \"$@\"\n",
        );
        bin
    }

    fn script(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A command with a clean environment: the fake tools first on the PATH, then the system's.
    fn command(&self, program: &str, status: i32) -> Command {
        let _ = std::fs::remove_file(self.dir.path().join("tolk.args"));
        let _ = std::fs::remove_file(self.dir.path().join("srun.args"));
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().display()),
            )
            .env("HOME", self.dir.path())
            .env("FAKE_DIR", self.dir.path())
            .env("FAKE_STATUS", status.to_string());
        cmd
    }

    /// The arguments `tool` was last called with, if it was.
    fn args(&self, tool: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{tool}.args"))).ok()?;
        Some(text.lines().map(str::to_string).collect())
    }
}

/// Whether `args` holds `option` followed by `value`.
fn has_option(args: &[String], option: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == option && w[1] == value)
}

/// What the Job controller does with a pod whose `tolk` container exited with `code`: the first
/// podFailurePolicy rule that matches, else `Count` (the default: the pod is retried while
/// the index's backoff limit lasts).
fn pod_outcome(job: &Yaml, code: i32) -> String {
    if code == 0 {
        return "Succeeded".into();
    }
    for rule in job["spec"]["podFailurePolicy"]["rules"].as_vec().unwrap() {
        let on = &rule["onExitCodes"];
        if on.is_badvalue() {
            continue;
        }
        if let Some(name) = on["containerName"].as_str() {
            if name != "tolk" {
                continue;
            }
        }
        let listed = on["values"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|v| v.as_i64() == Some(i64::from(code)));
        let matches = match on["operator"].as_str().unwrap() {
            "In" => listed,
            "NotIn" => !listed,
            other => panic!("unknown operator {other}"),
        };
        if matches {
            return rule["action"].as_str().unwrap().to_string();
        }
    }
    "Count".into()
}

#[test]
fn the_kubernetes_job_accepts_bad_inputs_and_retries_aborted_shards() {
    let job = job();
    let spec = &job["spec"];
    let container = tolk_container(&job);
    // podFailurePolicy needs restartPolicy Never; Count only retries with a backoff limit.
    assert_eq!(
        spec["template"]["spec"]["restartPolicy"].as_str(),
        Some("Never")
    );
    assert!(spec["backoffLimitPerIndex"].as_i64().unwrap() >= 1);
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));

    let command: Vec<&str> = container["command"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    let script = container["args"][0].as_str().unwrap();

    let bin = FakeBin::new();
    let env = env_values(container);
    // tolk's status -> the container's -> what Kubernetes does with the pod.
    for (status, container_status, outcome) in [
        (0, 0, "Succeeded"),
        (1, 0, "Succeeded"),
        (2, 2, "FailIndex"),
        (3, 3, "Count"),
        (137, 137, "Count"),
    ] {
        let out = bin
            .command("/bin/sh", status)
            .arg("-c")
            .arg(script)
            .env("JOB_COMPLETION_INDEX", "5")
            .env("SHARDS", &env["SHARDS"])
            .env("THREADS", "4")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(container_status),
            "tolk {status}: {stderr}"
        );
        assert_eq!(
            pod_outcome(&job, container_status),
            outcome,
            "tolk {status}"
        );
        let args = bin.args("tolk").expect("tolk ran");
        assert_eq!(args[0], "batch");
        assert!(
            has_option(&args, "--shard", &format!("5/{}", env["SHARDS"])),
            "{args:?}"
        );
        assert!(has_option(&args, "--threads", "4"), "{args:?}");
        assert!(args.contains(&"--offline".to_string()), "{args:?}");
        if status == 1 {
            assert!(stderr.contains("tolk-report-shard-5-of-8.json"), "{stderr}");
        }
    }
    // Evictions and preemptions do not use up the retries.
    assert!(spec["podFailurePolicy"]["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .any(|r| r["action"].as_str() == Some("Ignore")
            && r["onPodConditions"][0]["type"].as_str() == Some("DisruptionTarget")));
}

#[test]
fn the_kubernetes_job_runs_locked_down_with_writable_caches_and_its_cpus() {
    let job = job();
    let spec = &job["spec"];
    let pod = &spec["template"]["spec"];
    let container = tolk_container(&job);
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    let uid = security["runAsUser"].as_i64().unwrap();
    assert!(uid > 0);
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    let dropped: Vec<&str> = security["capabilities"]["drop"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(dropped, ["ALL"]);
    // The image's user is the same one.
    assert!(
        read("deploy/Dockerfile").contains(&format!("\nUSER {uid}:")),
        "deploy/Dockerfile runs as another user than {uid}"
    );

    // Where tolk writes: its cache and the outputs on a writable volume, /tmp on an emptyDir;
    // the model cache may be read-only.
    let mounts: Vec<(&str, &str, bool)> = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
                m["readOnly"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .filter(|(at, _, _)| Path::new(path).starts_with(at))
            .max_by_key(|(at, _, _)| at.len())
            .unwrap_or_else(|| panic!("{path} is on the read-only root file system"))
    };
    let env = env_values(container);
    for writable in [env["TOLK_CACHE_DIR"].as_str(), "/data/out", "/tmp"] {
        let (_, _, read_only) = mount_of(writable);
        assert!(!read_only, "{writable} is read-only");
    }
    let (_, tmp, _) = mount_of("/tmp");
    let tmp_volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(tmp))
        .unwrap();
    assert!(!tmp_volume["emptyDir"].is_badvalue());
    mount_of(&env["HF_HUB_CACHE"]);
    assert_eq!(env["HF_HUB_OFFLINE"], "1");

    // As many shards as pods, and as many threads as requested cores.
    let shards: i64 = env["SHARDS"].parse().unwrap();
    assert_eq!(spec["completions"].as_i64(), Some(shards));
    assert_eq!(spec["parallelism"].as_i64(), Some(shards));
    let threads = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("THREADS"))
        .unwrap();
    let field = &threads["valueFrom"]["resourceFieldRef"];
    assert_eq!(field["resource"].as_str(), Some("requests.cpu"));
    assert_eq!(field["containerName"].as_str(), Some("tolk"));
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
}

/// The sbatch script run as Slurm runs it, with these array variables.
fn sbatch(bin: &FakeBin, status: i32, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = bin.command("bash", status);
    cmd.arg(repo_file("deploy/slurm/tolk-batch.sbatch")).args([
        "in",
        "out",
        "--model",
        "/shared/models/tiny",
    ]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ARRAY_0_2: &[(&str, &str)] = &[
    ("SLURM_ARRAY_TASK_ID", "2"),
    ("SLURM_ARRAY_TASK_COUNT", "3"),
    ("SLURM_ARRAY_TASK_MIN", "0"),
    ("SLURM_ARRAY_TASK_MAX", "2"),
    ("SLURM_CPUS_PER_TASK", "6"),
];

#[test]
fn the_slurm_script_shards_by_the_array_and_maps_exit_statuses() {
    let text = read("deploy/slurm/tolk-batch.sbatch");
    assert!(text.contains("\n#SBATCH --cpus-per-task="), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("SHARDS=") && l[7..].starts_with(|c: char| c.is_ascii_digit())),
        "the number of shards is hard-coded"
    );

    let bin = FakeBin::new();
    for (status, expected) in [(0, 0), (1, 0), (2, 2), (3, 3)] {
        let (code, stderr) = sbatch(&bin, status, ARRAY_0_2);
        assert_eq!(code, Some(expected), "tolk {status}: {stderr}");
        // `srun -c` (Slurm 22.05 no longer passes --cpus-per-task on to srun), then tolk.
        let srun = bin.args("srun").expect("srun ran");
        assert_eq!(srun[..2], ["-c", "6"], "{srun:?}");
        assert_eq!(srun[2], "tolk");
        let args = bin.args("tolk").expect("tolk ran");
        assert!(has_option(&args, "--shard", "2/3"), "{args:?}");
        assert!(has_option(&args, "--threads", "6"), "{args:?}");
        assert!(has_option(&args, "-o", "out"), "{args:?}");
        // The options after OUT_DIR go to tolk.
        assert!(
            has_option(&args, "--model", "/shared/models/tiny"),
            "{args:?}"
        );
        match status {
            1 => assert!(
                stderr.contains("out/tolk-report-shard-2-of-3.json"),
                "{stderr}"
            ),
            3 => assert!(stderr.contains("requeue"), "{stderr}"),
            _ => {}
        }
    }

    // Not an array task: a clear error, and tolk never runs.
    let (code, stderr) = sbatch(&bin, 0, &[("SLURM_CPUS_PER_TASK", "6")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SLURM_ARRAY_TASK_COUNT"), "{stderr}");
    assert!(bin.args("tolk").is_none());

    // An array that does not start at 0 would skip a shard.
    let (code, stderr) = sbatch(
        &bin,
        0,
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("0-(N-1)") && stderr.contains("TOLK_SHARDS"),
        "{stderr}"
    );
    assert!(bin.args("tolk").is_none());

    // Some tasks of an 8-shard run again: TOLK_SHARDS names N.
    let (code, stderr) = sbatch(
        &bin,
        0,
        &[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "5"),
            ("TOLK_SHARDS", "8"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(has_option(&bin.args("tolk").unwrap(), "--shard", "5/8"));
    // Without SLURM_CPUS_PER_TASK (no --cpus-per-task), one CPU.
    let vars: Vec<_> = ARRAY_0_2
        .iter()
        .copied()
        .filter(|(k, _)| *k != "SLURM_CPUS_PER_TASK")
        .collect();
    assert_eq!(sbatch(&bin, 0, &vars).0, Some(0));
    assert_eq!(bin.args("srun").unwrap()[..2], ["-c", "1"]);
}

#[test]
fn the_docker_build_caches_dependencies_and_sends_only_what_it_needs() {
    let ignore = read(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules[0], "*", "everything is left out first");
    let included: Vec<&str> = rules.iter().filter_map(|r| r.strip_prefix('!')).collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "models"] {
        assert!(included.contains(&needed), "{needed} is not sent");
    }

    let dockerfile = read("deploy/Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("FROM ")).count(), 2);
    // Every COPY from the context copies something the context has.
    for line in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                included.contains(source),
                "{line}: {source} is not in the context"
            );
        }
    }
    // The dependencies are built before the sources arrive.
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in deploy/Dockerfile"))
    };
    assert!(position("COPY Cargo.toml Cargo.lock") < position("cargo build"));
    assert!(position("cargo build") < position("COPY src"));
    assert!(dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"));
    // Any subcommand can run, and the server's port is declared.
    assert!(!lines.iter().any(|l| l.starts_with("ENTRYPOINT")));
    assert!(lines.contains(&"EXPOSE 5000"));
    let user = lines.iter().rfind(|l| l.starts_with("USER ")).unwrap();
    assert!(
        !user.contains("root") && !user.starts_with("USER 0"),
        "{user}"
    );
}

/// The server's Deployment: probes on /healthz and /readyz, locked down, and its `tolk serve`
/// arguments run for real (with the tiny model, on a free port): it answers, becomes ready, and
/// on SIGTERM (what Kubernetes sends) stops with status 0.
#[test]
#[cfg(all(unix, feature = "serve"))]
fn the_server_deployment_probes_its_endpoints_and_its_command_runs() {
    let docs = YamlLoader::load_from_str(&read("deploy/kubernetes/tolk-serve.yaml")).unwrap();
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .unwrap();
    let service = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service"))
        .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(container["ports"][0]["containerPort"].as_i64(), Some(5000));
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    // The grace Kubernetes gives is longer than the server's own.
    let args: Vec<String> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("$(THREADS)", "2"))
        .map(|a| match a.as_str() {
            "--port=5000" => "--port=0".to_string(),
            "--host=0.0.0.0" => "--host=127.0.0.1".to_string(),
            _ => a,
        })
        .collect();
    let grace: i64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-grace="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > grace);
    let cache = tempfile::tempdir().unwrap();
    let model = repo_file("tests/fixtures/marian-tiny");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tolk"))
        .args(&args)
        .args(["--model", model.to_str().unwrap(), "--pair", "nl-en"])
        .env("TOLK_CACHE_DIR", cache.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr = crate::common::listening_addr(&mut stderr);
    let get = |path: &str| crate::common::http(&addr, "GET", path, "");
    assert!(get("/healthz").starts_with("HTTP/1.1 200"));
    let mut ready = false;
    for _ in 0..300 {
        if get("/readyz").starts_with("HTTP/1.1 200") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "never ready");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
