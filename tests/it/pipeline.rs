//! The library's `Pipeline` on the committed tiny model: stages agree with the parts used alone,
//! spans point into the input, long sentences are cut and never truncated, empty input never
//! reaches the model, and one pipeline shared by threads gives the sequential results.

use std::sync::Arc;

use tolk::config::GenerationConfig;
use tolk::pipeline::{GenerationOverrides, Pipeline, PipelineBuilder, SummarizerChoice};
use tolk::record::Output;
use tolk::segment::{Language, SegmentKind, SegmentMode, Segmenter};
use tolk::summarize::{Document, Summarizer, Summary, SummarySentence};
use tolk::translate::{BatchOptions, LoadOptions, Translator};

use crate::common::fixture_dir;

pub const ARTICLE: &str = "bron: ANP\n\
Nieuwe brug over de Maas geopend\n\
\n\
De nieuwe brug bij Venlo is dinsdag geopend door de burgemeester. Duizenden fietsers \
reden er de eerste dag overheen.\n\
\n\
Volgens de gemeente kostte de bouw 40 miljoen euro. De oude brug wordt volgend jaar \
gesloopt.\n\
\n\
- Lengte: 300 meter\n\
- Bouwtijd: drie jaar\n";

/// Fast settings for the random-weight model: greedy, at most 8 new tokens.
fn fast() -> PipelineBuilder {
    Pipeline::builder()
        .model_dir(fixture_dir("marian-tiny"))
        .overrides(
            GenerationOverrides::default()
                .with_num_beams(1)
                .with_max_new_tokens(8),
        )
}

/// The output without its timings, for comparing runs.
fn untimed(mut o: Output) -> Output {
    o.timings = Default::default();
    o
}

#[test]
fn run_agrees_with_the_stages_used_alone() {
    let pipeline = fast().build().unwrap();
    let out = pipeline.run(ARTICLE).unwrap();
    assert_eq!(out.source, ARTICLE);
    assert!(matches!(
        &out.sentences[0].kind,
        SegmentKind::Metadata { key, value } if key == "bron" && value == "ANP"
    ));
    assert_eq!(out.sentences[0].translation, None);
    assert_eq!(out.sentences[1].kind, SegmentKind::Headline);
    let kinds: Vec<&str> = out
        .sentences
        .iter()
        .map(|s| match s.kind {
            SegmentKind::Sentence => "s",
            SegmentKind::Headline => "h",
            SegmentKind::ListItem { .. } => "l",
            SegmentKind::Metadata { .. } => "m",
        })
        .collect();
    assert_eq!(kinds.concat(), "mhssssll");
    for (i, s) in out.sentences.iter().enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(&ARTICLE[s.span.clone()], s.source);
    }
    assert_eq!(
        out.sentences
            .iter()
            .map(|s| s.paragraph)
            .collect::<Vec<_>>(),
        [0, 0, 1, 1, 2, 2, 3, 3]
    );

    // The translator alone, on the flattened segments, gives the same translations and scores.
    let doc = pipeline.segment(ARTICLE);
    let flat: Vec<String> = doc
        .translatable()
        .map(|s| s.flat_text().into_owned())
        .collect();
    let refs: Vec<&str> = flat.iter().map(String::as_str).collect();
    let alone = pipeline
        .translator()
        .translate_with(&refs, pipeline.generation())
        .unwrap();
    let ours: Vec<&SentenceRef> = out
        .sentences
        .iter()
        .filter(|s| s.translation.is_some())
        .collect();
    assert_eq!(ours.len(), alone.len());
    for (s, t) in ours.iter().zip(&alone) {
        assert_eq!(s.translation.as_deref(), Some(t.text.as_str()));
        assert_eq!(s.score, Some(t.score));
        assert_eq!(s.source_tokens, t.source_tokens);
        assert_eq!(s.target_tokens, t.ids.len());
        assert!(s.target_tokens <= 9, "8 new tokens at most (+ forced </s>)");
    }
    // Reassembly: metadata as written, then the translations in the article's layout.
    let texts: Vec<&str> = alone.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(out.translation, doc.reassemble(&texts).unwrap());
    assert!(out.translation.starts_with("bron: ANP\n"));

    // The summary: sentences of the story (no headline), aligned to the Dutch source.
    let summary = out.summary.as_ref().unwrap();
    assert_eq!(summary.summarizer, "extractive");
    assert_eq!(summary.sentences.len(), 2, "6 units -> 2 sentences");
    for item in &summary.sentences {
        let [i] = item.sentences[..] else {
            panic!("one segment per summary sentence: {item:?}")
        };
        let s = &out.sentences[i];
        assert_ne!(s.kind, SegmentKind::Headline);
        assert_eq!(
            Some(item.text.trim()),
            s.translation.as_deref().map(str::trim)
        );
        assert_eq!(item.source.as_deref(), Some(s.source.as_str()));
    }
    assert_eq!(out.model.dir, fixture_dir("marian-tiny"));
    assert_eq!(out.model.repo, None);
    assert!(out.timings.total >= out.timings.translate);
}

type SentenceRef = tolk::record::SentenceOutput;

#[test]
fn empty_input_gives_an_empty_output_without_the_model() {
    let pipeline = fast().build().unwrap();
    for text in ["", "   ", "\n\n\t\n", "\u{FEFF}"] {
        let out = pipeline.run(text).unwrap();
        assert!(out.is_empty(), "{text:?}");
        assert_eq!(out.translation, "");
        assert!(out.sentences.iter().all(|s| s.translation.is_none()));
        assert_eq!(out.summary.as_ref().unwrap().sentences.len(), 0);
        assert_eq!(out.source_tokens(), 0);
    }
    // A summariser that fails on any call proves that nothing reached it either.
    let pipeline = fast()
        .summarizer(SummarizerChoice::Custom(Arc::new(Failing)))
        .build()
        .unwrap();
    assert!(pipeline.run(" \n ").is_ok());
    assert!(pipeline.run("Een zin.").is_err());
}

struct Failing;

impl Summarizer for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn summarize_document(&self, _: &Document<'_>) -> tolk::Result<Summary> {
        Err(tolk::Error::option("failing", "called"))
    }
}

/// Picks the last sentence and writes one of its own.
struct LastAndOwn;

impl Summarizer for LastAndOwn {
    fn name(&self) -> &str {
        "last-and-own"
    }
    fn summarize_document(&self, doc: &Document<'_>) -> tolk::Result<Summary> {
        let n = doc.sentences().len();
        Ok(Summary {
            sentences: vec![
                SummarySentence {
                    index: Some(n - 1),
                    text: doc.sentences()[n - 1].to_string(),
                    score: 1.0,
                },
                SummarySentence {
                    index: None,
                    text: "Generated.".into(),
                    score: 1.0,
                },
            ],
            input_sentences: n,
        })
    }
}

#[test]
fn summariser_choices() {
    let none = fast()
        .summarizer(SummarizerChoice::Disabled)
        .build()
        .unwrap();
    assert!(none.run(ARTICLE).unwrap().summary.is_none());
    assert!(none.summarizer().is_none());

    let custom = fast()
        .summarizer(SummarizerChoice::Custom(Arc::new(LastAndOwn)))
        .build()
        .unwrap();
    let out = custom.run(ARTICLE).unwrap();
    let summary = out.summary.unwrap();
    assert_eq!(summary.summarizer, "last-and-own");
    // The last unit is the second list item (index 7); the generated sentence has no source.
    assert_eq!(summary.sentences[0].sentences, [7]);
    assert_eq!(
        summary.sentences[0].source.as_deref(),
        Some("Bouwtijd: drie jaar")
    );
    assert!(summary.sentences[1].sentences.is_empty());
    assert_eq!(summary.source_text(), None);
}

#[test]
fn long_sentences_are_cut_to_the_token_limit_never_truncated() {
    let clause = "de gemeente heeft besloten dat de nieuwe brug over de rivier wordt gebouwd";
    let long = format!("{}.", [clause; 12].join(", en "));
    let pipeline = fast().max_segment_tokens(24).build().unwrap();
    let out = pipeline.run(&long).unwrap();
    let tok = pipeline.translator().tokenizer();
    assert!(out.sentences.len() > 5, "{} pieces", out.sentences.len());
    for (n, s) in out.sentences.iter().enumerate() {
        assert_eq!(s.continues, n > 0);
        let flat = s.source.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(tok.encode(&flat).unwrap().len() <= 24, "{flat}");
        assert_eq!(s.source_tokens, tok.encode(&flat).unwrap().len());
    }
    // Nothing lost: the pieces cover the sentence, in order.
    let joined: Vec<&str> = out.sentences.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(joined.join(" "), long);
    // The summary sees one sentence made of all pieces.
    let summary = out.summary.unwrap();
    assert_eq!(summary.sentences.len(), 1);
    assert_eq!(summary.sentences[0].sentences.len(), out.sentences.len());
    assert_eq!(summary.sentences[0].source.as_deref(), Some(long.as_str()));

    // The default limit is 400 tokens, within the model's positions; more is refused.
    assert_eq!(fast().build().unwrap().max_segment_tokens(), 400);
    let e = fast()
        .max_segment_tokens(513)
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("512 source positions"), "{e}");
}

#[test]
fn lines_mode_translates_every_line_as_written() {
    let text = "bron: ANP\nEerste regel zonder punt\nTweede regel. Met twee zinnen.\n\nDerde";
    let pipeline = fast().segment_mode(SegmentMode::Lines).build().unwrap();
    let out = pipeline.run(text).unwrap();
    let sources: Vec<&str> = out.sentences.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "bron: ANP",
            "Eerste regel zonder punt",
            "Tweede regel. Met twee zinnen.",
            "Derde"
        ]
    );
    let alone = pipeline
        .translator()
        .translate_with(&sources, pipeline.generation())
        .unwrap();
    for (s, t) in out.sentences.iter().zip(&alone) {
        assert_eq!(s.translation.as_deref(), Some(t.text.as_str()));
    }
}

#[test]
fn one_pipeline_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pipeline>();
    assert_send_sync::<Output>();

    let pipeline = Arc::new(fast().build().unwrap());
    let texts: Vec<String> = (0..6)
        .map(|i| format!("Artikel {i}. {}", &ARTICLE[..60 + 20 * i]))
        .collect();
    let sequential: Vec<Output> = texts
        .iter()
        .map(|t| untimed(pipeline.run(t).unwrap()))
        .collect();
    let handles: Vec<_> = texts
        .iter()
        .cloned()
        .map(|t| {
            let p = Arc::clone(&pipeline);
            std::thread::spawn(move || untimed(p.run(&t).unwrap()))
        })
        .collect();
    let parallel: Vec<Output> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(parallel, sequential);
}

#[test]
fn builder_options_and_refusals() {
    let translator =
        Translator::from_dir(fixture_dir("marian-tiny"), &LoadOptions::default()).unwrap();
    let shared = Arc::new(translator);
    // A shared translator keeps its batching.
    let e = Pipeline::builder()
        .translator(Arc::clone(&shared))
        .batching(BatchOptions::default().with_max_batch_size(2))
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("batching"), "{e}");
    let p = Pipeline::builder()
        .translator(Arc::clone(&shared))
        .overrides(
            GenerationOverrides::default()
                .with_num_beams(1)
                .with_max_new_tokens(4),
        )
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(&p.shared_translator(), &shared));
    assert_eq!(p.generation().num_beams, 1);
    // The model's defaults come from generation_config.json; a full replacement is possible.
    assert_eq!(p.translator().generation().num_beams, 6);
    let g = GenerationConfig {
        max_new_tokens: Some(3),
        ..p.translator().generation().clone()
    }
    .with_num_beams(2);
    let p2 = Pipeline::builder()
        .translator(Arc::clone(&shared))
        .generation(g.clone())
        .build()
        .unwrap();
    assert_eq!(p2.generation(), &g);
    // Options that cannot work are refused when building.
    let e = fast()
        .overrides(GenerationOverrides::default().with_num_beams(0))
        .build()
        .unwrap_err();
    assert!(matches!(e, tolk::Error::Option { .. }), "{e}");
    // Batching does not change the tokens (scores may differ in the last bits, as padded
    // batches sum in another order).
    let small = fast()
        .batching(BatchOptions::default().with_max_batch_size(1))
        .build()
        .unwrap();
    let a = small.run(ARTICLE).unwrap();
    let b = fast().build().unwrap().run(ARTICLE).unwrap();
    assert_eq!(a.translation, b.translation);
    for (x, y) in a.sentences.iter().zip(&b.sentences) {
        assert_eq!(x.translation, y.translation);
        assert!((x.score.unwrap_or(0.0) - y.score.unwrap_or(0.0)).abs() < 1e-4);
    }
}

/// A copy of the marian-tiny fixture in a directory called `name`, whose
/// `tokenizer_config.json` says `source_lang` (or nothing).
fn fixture_copy(
    parent: &std::path::Path,
    name: &str,
    source_lang: Option<&str>,
) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture_dir("marian-tiny")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut config = serde_json::json!({"separate_vocabs": false, "model_max_length": 512});
    if let Some(lang) = source_lang {
        config["source_lang"] = serde_json::json!(lang);
    }
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn the_segmenter_follows_the_model_source_language_unless_set() {
    let tmp = tempfile::tempdir().unwrap();
    let chinese = "今天天气很好。我们去公园散步吧！";
    // tokenizer_config.json says zho: the language-independent rules.
    let zh = fixture_copy(tmp.path(), "model", Some("zho"));
    let p = fast().model_dir(&zh).build().unwrap();
    assert_eq!(
        p.translator().files().source_language.as_deref(),
        Some("zh")
    );
    assert_eq!(p.segmenter().language, Some(Language::new("zh").unwrap()));
    assert_eq!(p.segment(chinese).translatable().count(), 2);
    // Nothing in the files but the directory's name.
    let ja = fixture_copy(tmp.path(), "opus-mt-ja-en", None);
    let p = fast().model_dir(&ja).build().unwrap();
    assert_eq!(p.segmenter().effective_language().code(), "ja");
    // Dutch rules for Dutch (marian-tiny says nl), and for a model that says nothing.
    let p = fast().build().unwrap();
    assert!(p.segmenter().effective_language().is_dutch());
    let plain = fixture_copy(tmp.path(), "plain", None);
    let p = fast().model_dir(&plain).build().unwrap();
    assert_eq!(p.translator().files().source_language, None);
    assert!(p.segmenter().effective_language().is_dutch());
    // A language the caller chose is kept.
    let p = fast()
        .model_dir(&zh)
        .segmenter(Segmenter::new().with_language(Language::english()))
        .build()
        .unwrap();
    assert_eq!(p.segmenter().language, Some(Language::english()));
    // The Dutch abbreviations are not English ones: `dhr.` is a Dutch title only.
    let english = "He spoke to dhr. Jansen. He left.";
    assert_eq!(p.segment(english).translatable().count(), 3);
    let dutch = fast().build().unwrap();
    assert_eq!(dutch.segment(english).translatable().count(), 2);
}

/// A JSON-lines corpus whose scheduler round panics stops with that error, typed, after the
/// whole lines before the failed record; it never hangs. Without faults, every record is there.
#[test]
fn a_corpus_whose_round_panics_stops_with_the_error_and_never_hangs() {
    use crate::common::{Fault, Faulty};
    use tolk::document::{Document, DocumentOptions, Source};
    use tolk::formats::InputFormat;
    use tolk::pipeline::DocumentRun;
    use tolk::scheduler::SchedulerError;

    let p = fast().build().unwrap();
    let corpus: String = (0..40)
        .map(|i| {
            format!("{{\"id\": {i}, \"text\": \"Het kabinet heeft op dag {i} nieuwe plannen.\"}}\n")
        })
        .collect();
    let options = DocumentOptions {
        input_format: Some(InputFormat::Jsonl),
        ..DocumentOptions::default()
    };
    let generation = p.generation().clone();
    let translate = |translator: &dyn tolk::translate::SegmentTranslator| {
        let doc = Document::open(Source::Text(corpus.clone(), "c.jsonl".into()), &options).unwrap();
        let run = DocumentRun {
            translator,
            generation: &generation,
            summary: false,
        };
        let mut out = Vec::new();
        let result = p.translate_to(&run, doc, &mut out, "<out>".as_ref(), &options, &mut ());
        (result, String::from_utf8(out).unwrap())
    };
    for fault in [Fault::Panic, Fault::Fail] {
        let faulty = Faulty::new(p.shared_translator(), &[(1, fault)]);
        let (result, out) = translate(&faulty);
        let e = result.unwrap_err();
        match fault {
            Fault::Panic => assert!(
                matches!(e, tolk::Error::Scheduler(SchedulerError::Panicked { .. })),
                "{e}"
            ),
            Fault::Fail => assert!(
                matches!(e, tolk::Error::Scheduler(SchedulerError::Failed { .. })),
                "{e}"
            ),
        }
        assert!(out.len() < corpus.len() * 10, "{out}");
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
    let (result, out) = translate(&*p.shared_translator());
    assert_eq!(result.unwrap().records, Some(40));
    assert_eq!(out.lines().count(), 40);
}
