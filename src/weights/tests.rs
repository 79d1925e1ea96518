//! Tests of the weights loader against fixtures made by torch (see
//! `tests/data/weights/make_weights.py`): the same state dict in every format, hostile pickles,
//! truncated and bit-flipped copies.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use serde_json::Value;

use super::*;

const GOOD: [(&str, WeightsFormat); 5] = [
    ("state.safetensors", WeightsFormat::Safetensors),
    ("state_zip.bin", WeightsFormat::TorchZip),
    ("state_zip_p5.bin", WeightsFormat::TorchZip),
    ("state_zip_deflate.bin", WeightsFormat::TorchZip),
    ("state_legacy.bin", WeightsFormat::TorchLegacy),
];

/// What the hostile fixtures would create if anything in them ran.
const PWNED: &str = "/tmp/tolk-weights-pwned";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/weights")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&read("state.json")).unwrap()
}

fn values_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn values_i64(t: &Tensor) -> Vec<i64> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
}

/// Checks every tensor of `w` against what torch wrote into state.json.
fn assert_matches_torch(w: &Weights) {
    let expected = expected();
    let tensors = expected["tensors"].as_object().unwrap();
    let mut want_names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    want_names.sort_unstable();
    assert_eq!(w.names().collect::<Vec<_>>(), want_names, "{:?}", w.path());
    for (name, spec) in tensors {
        let info = w.info(name).unwrap();
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape, shape, "{name}");
        assert_eq!(
            info.stored.name(),
            spec["dtype"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(info.dtype, info.stored.dtype());
        let t = w.tensor(name, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), shape.as_slice(), "{name}");
        assert_eq!(t.dtype(), info.dtype, "{name}");
        let want = spec["values"].as_array().unwrap();
        if matches!(
            info.dtype,
            DType::F64 | DType::F32 | DType::F16 | DType::BF16
        ) {
            let want: Vec<f64> = want.iter().map(|v| v.as_f64().unwrap()).collect();
            let got = values_f64(&t);
            assert_eq!(got.len(), want.len(), "{name}");
            for (g, e) in got.iter().zip(&want) {
                // Exact: every value round-trips through its own dtype.
                assert!(
                    g == e || (g.is_nan() && e.is_nan()),
                    "{name}: {got:?} vs {want:?}"
                );
                assert_eq!(g.is_sign_negative(), e.is_sign_negative(), "{name}: -0.0");
            }
        } else {
            let want: Vec<i64> = want.iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(values_i64(&t), want, "{name}");
        }
    }
}

#[test]
fn every_format_matches_what_torch_saved() {
    for (file, format) in GOOD {
        let w = Weights::open(&fixture(file)).unwrap();
        assert_eq!(w.format(), format, "{file}");
        assert_eq!(w.path(), fixture(file));
        assert_matches_torch(&w);
    }
}

#[test]
fn torch_files_keep_offsets_strides_and_shared_storages() {
    for file in ["state_zip.bin", "state_legacy.bin", "state_zip_p5.bin"] {
        let w = Weights::open(&fixture(file)).unwrap();
        let e = |n: &str| w.entries.get(n).unwrap().clone();
        assert_eq!(e("offset_view").offset, 5, "{file}");
        assert_eq!((e("strided").offset, e("strided").strides), (5, vec![5, 2]));
        assert_eq!(e("transposed").strides, vec![1, 3]);
        assert!(!e("transposed").is_contiguous());
        // tied.a and tied.b are one tensor object, tied.c another on the same storage.
        assert_eq!(e("tied.a").storage, e("tied.b").storage);
        assert_eq!(e("tied.a").storage, e("tied.c").storage);
        assert_ne!(e("tied.a").storage, e("f32").storage);
        // The file's shared storage is held once.
        let storages = expected()["tensors"].as_object().unwrap().len() - 2;
        assert_eq!(w.storages.len(), storages, "{file}");
    }
}

#[test]
fn format_comes_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let zip_named_safetensors = dir.path().join("model.safetensors");
    std::fs::write(&zip_named_safetensors, read("state_zip.bin")).unwrap();
    let w = Weights::open(&zip_named_safetensors).unwrap();
    assert_eq!(w.format(), WeightsFormat::TorchZip);
    let safetensors_named_bin = dir.path().join("pytorch_model.bin");
    std::fs::write(&safetensors_named_bin, read("state.safetensors")).unwrap();
    let w = Weights::open(&safetensors_named_bin).unwrap();
    assert_eq!(w.format(), WeightsFormat::Safetensors);
    assert_eq!(w.metadata().get("format").map(String::as_str), Some("pt"));
}

#[test]
fn big_endian_zip_is_byte_swapped() {
    let w = Weights::open(&fixture("state_zip_bigendian.bin")).unwrap();
    assert!(w.big_endian);
    let want: Value = serde_json::from_slice(&read("state_bigendian.json")).unwrap();
    for (name, spec) in want.as_object().unwrap() {
        let t = w.tensor(name, &Device::Cpu).unwrap();
        let want: Vec<f64> = spec["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values_f64(&t), want, "{name}");
    }
}

fn model_file_error(e: &Error) -> (&Path, &str, &str) {
    match e {
        Error::ModelFile {
            path,
            message,
            hint,
        } => (path, message, hint),
        other => panic!("not a model-file error: {other}"),
    }
}

#[test]
fn hostile_pickles_are_refused_naming_file_and_global() {
    for (file, global) in [
        ("evil_reduce_os_system.pkl", "posix.system"),
        ("evil_instance.pkl", "__main__.EvilInstance"),
        ("evil_exec_legacy.bin", "builtins.exec"),
        ("evil_eval_zip.bin", "builtins.eval"),
    ] {
        let path = fixture(file);
        let err = Weights::open(&path).unwrap_err();
        let (p, message, hint) = model_file_error(&err);
        assert_eq!(p, path);
        assert!(
            message.contains(&format!("`{global}`")),
            "{file}: {message}"
        );
        assert!(message.contains("refused"), "{file}: {message}");
        assert!(hint.contains("never code"), "{file}: {hint}");
        let shown = err.to_string();
        assert!(shown.contains(file) && shown.contains(global), "{shown}");
    }
    assert!(
        !Path::new(PWNED).exists(),
        "something ran a payload (or {PWNED} was left by someone else)"
    );
}

#[test]
fn broken_zip_checkpoints_are_refused() {
    let err = Weights::open(&fixture("evil_missing_storage_zip.bin")).unwrap_err();
    let (_, message, hint) = model_file_error(&err);
    assert!(
        message.contains("storage `0`") && message.contains("no record"),
        "{message}"
    );
    assert!(hint.contains("download it again"), "{hint}");

    let err = Weights::open(&fixture("evil_short_storage_zip.bin")).unwrap_err();
    let (_, message, _) = model_file_error(&err);
    assert!(message.contains("has 3 bytes"), "{message}");
}

/// The first three pickles of the legacy fixture: magic number, protocol version, sys_info.
fn legacy_header() -> Vec<u8> {
    let bytes = read("state_legacy.bin");
    let mut end = 0;
    for _ in 0..3 {
        end += pickle::load(&bytes[end..], end).unwrap().end;
    }
    bytes[..end].to_vec()
}

#[test]
fn pickle_bombs_fail_fast() {
    let mut bombs: Vec<(&str, Vec<u8>)> = vec![("bomb_repeat.pkl", read("bomb_repeat.pkl"))];
    let mut marks = vec![0x80, 2];
    marks.extend(std::iter::repeat_n(b'(', 100_000));
    bombs.push(("marks", marks));
    let mut deep = vec![0x80, 2, b')'];
    deep.extend(std::iter::repeat_n(0x85, 100_000));
    deep.push(b'.');
    bombs.push(("deep tuple", deep));
    let mut wide = vec![0x80, 2];
    wide.extend(std::iter::repeat_n(b']', 1_000_000));
    wide.push(b'.');
    bombs.push(("wide stack", wide));
    let mut huge = vec![0x80, 4, 0x8d];
    huge.extend((1u64 << 62).to_le_bytes());
    huge.extend(b"abc.");
    bombs.push(("huge string", huge));
    let mut big_memo = vec![0x80, 2, b'N'];
    for i in 0..20u32 {
        big_memo.push(b'r');
        big_memo.extend((u32::MAX - i).to_le_bytes());
    }
    big_memo.push(b'.');
    bombs.push(("sparse memo", big_memo));
    // Each bomb alone, and as the state dict of an otherwise valid legacy file.
    for (what, bomb) in bombs {
        for bytes in [bomb.clone(), [legacy_header(), bomb].concat()] {
            let start = std::time::Instant::now();
            let err = Weights::from_bytes("bomb.bin", bytes).unwrap_err();
            assert!(err.to_string().contains("bomb.bin"), "{what}: {err}");
            assert!(
                start.elapsed().as_secs() < 5,
                "{what} took {:?}",
                start.elapsed()
            );
        }
    }
}

#[test]
fn big_endian_legacy_files_are_refused_clearly() {
    let mut bytes = read("state_legacy.bin");
    let header = legacy_header().len();
    // sys_info holds exactly one NEWTRUE: little_endian.
    let at = bytes[..header].iter().position(|&b| b == 0x88).unwrap();
    bytes[at] = 0x89;
    let err = Weights::from_bytes("be.bin", bytes).unwrap_err();
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    for (file, _) in GOOD
        .iter()
        .chain(&[("state_zip_bigendian.bin", WeightsFormat::TorchZip)])
    {
        let bytes = read(file);
        for cut in 0..bytes.len() {
            let label = format!("cut-{cut}-{file}");
            let err = Weights::from_bytes(&label, bytes[..cut].to_vec()).unwrap_err();
            assert!(err.to_string().contains(&label), "{label}: {err}");
            assert!(matches!(err, Error::ModelFile { .. }), "{label}: {err}");
        }
    }
}

#[test]
fn truncated_files_on_disk_fail_to_open() {
    let dir = tempfile::tempdir().unwrap();
    for (file, _) in GOOD {
        let bytes = read(file);
        for cut in [0, 1, 8, 9, bytes.len() / 2, bytes.len() - 1] {
            let path = dir.path().join(format!("{cut}-{file}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = Weights::open(&path).unwrap_err();
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
    }
    let err = Weights::open(&dir.path().join("missing.bin")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn unrecognised_files_say_what_they_are() {
    for (bytes, says) in [
        (&b""[..], "empty"),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n",
            "Git LFS",
        ),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b"hello, world, not weights", "not a safetensors file"),
    ] {
        let err = Weights::from_bytes("w.bin", bytes.to_vec()).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("w.bin"), "{err}");
    }
}

fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn safetensors_header_errors_are_specific() {
    let mut too_long = 1000u64.to_le_bytes().to_vec();
    too_long.extend(b"{}");
    let ok_header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    for (bytes, says) in [
        (too_long, "goes past the end"),
        (safetensors_bytes("{bad json}", b""), "not valid JSON"),
        (
            safetensors_bytes(ok_header, &[0; 4]),
            "do not end at the end",
        ),
        (
            safetensors_bytes(ok_header, &[0; 12]),
            "do not end at the end",
        ),
        (
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "invalid",
        ),
        (
            safetensors_bytes(
                r#"{"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "does not support",
        ),
        (
            safetensors_bytes(
                r#"{"__metadata__":{"tolk.aliases":"{\"b\":\"zz\"}"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "not in the file",
        ),
    ] {
        let err = Weights::from_bytes("m.safetensors", bytes).unwrap_err();
        assert!(err.to_string().contains(says), "{says}: {err}");
        assert!(err.to_string().contains("m.safetensors"), "{err}");
    }
    let w = Weights::from_bytes("ok.safetensors", safetensors_bytes(ok_header, &[0; 8])).unwrap();
    assert_eq!(w.info("a").unwrap().shape, vec![2]);
}

#[test]
fn bin_to_safetensors_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "state_zip.bin",
        "state_legacy.bin",
        "state_zip_bigendian.bin",
    ] {
        let original = Weights::open(&fixture(file)).unwrap();
        let out = dir.path().join(format!("{file}.safetensors"));
        original.save_safetensors(&out).unwrap();
        let copy = Weights::open(&out).unwrap();
        assert_eq!(copy.format(), WeightsFormat::Safetensors);
        assert_eq!(
            copy.names().collect::<Vec<_>>(),
            original.names().collect::<Vec<_>>()
        );
        for name in original.names() {
            assert_eq!(copy.info(name), original.info(name), "{name}");
            let a = original.tensor(name, &Device::Cpu).unwrap();
            let b = copy.tensor(name, &Device::Cpu).unwrap();
            assert_eq!(a.dtype(), b.dtype());
            assert_eq!(values_f64(&a), values_f64(&b), "{file}: {name}");
        }
        if file != "state_zip_bigendian.bin" {
            // Tied tensors are written once.
            let aliases = copy.metadata().get(safetensors::ALIASES_KEY).unwrap();
            let aliases: BTreeMap<String, String> = serde_json::from_str(aliases).unwrap();
            assert_eq!(aliases.get("tied.b").map(String::as_str), Some("tied.a"));
            assert_eq!(aliases.get("tied.c").map(String::as_str), Some("tied.a"));
            assert_eq!(copy.storages.len(), copy.len() - 2);
        }
        assert_eq!(
            copy.metadata().get("format").map(String::as_str),
            Some("pt")
        );
    }
    // Nothing but the outputs is left in the directory (the temporary files were renamed).
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "state_legacy.bin.safetensors",
            "state_zip.bin.safetensors",
            "state_zip_bigendian.bin.safetensors"
        ]
    );
}

#[test]
fn saving_into_a_missing_directory_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = Weights::open(&fixture("state.safetensors")).unwrap();
    let out = dir.path().join("no/such/dir/model.safetensors");
    let err = w.save_safetensors(&out).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn var_builder_converts_dtype_and_checks_shapes() {
    let w = Weights::open(&fixture("state_zip.bin")).unwrap();
    let f32_values = values_f64(&w.tensor("f32", &Device::Cpu).unwrap());
    let vb = w.into_var_builder(DType::F16, &Device::Cpu);
    let t = vb.get((3, 4), "f32").unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(values_f64(&t), f32_values);
    let t = vb.pp("tied").get((5, 3), "b").unwrap();
    assert_eq!(t.dtype(), DType::F16);
    let i = vb
        .get_with_hints_dtype(4, "i8", Default::default(), DType::F32)
        .unwrap();
    assert_eq!(values_f64(&i), vec![-128.0, 127.0, 0.0, -1.0]);

    let err = vb.get((4, 3), "f32").unwrap_err().to_string();
    for needle in ["`f32`", "state_zip.bin", "[3, 4]", "[4, 3]"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(vb.get(3, "nope").is_err());
    assert!(vb.contains_tensor("param"));

    let w = Weights::open(&fixture("state_legacy.bin")).unwrap();
    let vb = w.into_var_builder(DType::F32, &Device::Cpu);
    let t = vb.get(2, "param").unwrap();
    assert_eq!((t.dtype(), values_f64(&t)), (DType::F32, vec![1.5, -2.5]));
}

#[test]
fn check_shape_names_tensor_file_and_shapes() {
    let w = Weights::open(&fixture("state.safetensors")).unwrap();
    w.check_shape("f32", &[3, 4]).unwrap();
    let err = w.check_shape("f32", &[12]).unwrap_err();
    let (path, message, hint) = model_file_error(&err);
    assert_eq!(path, fixture("state.safetensors"));
    assert!(message.contains("`f32`") && message.contains("[3, 4]") && message.contains("[12]"));
    assert!(hint.contains("config.json"));
    assert!(w.tensor("missing", &Device::Cpu).is_err());
}

#[test]
fn weights_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Weights>();
}

#[test]
fn gather_handles_every_layout() {
    // A 2x3x2 view of 0..24 with strides (12, 1, 3) starting at 1.
    let storage: Vec<u8> = (0..24u8).collect();
    let entry = Entry {
        dtype: StoredDtype::U8,
        shape: vec![2, 3, 2],
        strides: vec![12, 1, 3],
        offset: 1,
        storage: 0,
    };
    entry.check(storage.len()).unwrap();
    let got = gather(&storage, 1, &entry).unwrap();
    assert_eq!(got, vec![1, 4, 2, 5, 3, 6, 13, 16, 14, 17, 15, 18]);
    // Broadcast (stride 0) and scalar.
    let entry = Entry {
        dtype: StoredDtype::U8,
        shape: vec![3, 2],
        strides: vec![0, 1],
        offset: 7,
        storage: 0,
    };
    assert_eq!(gather(&storage, 1, &entry).unwrap(), vec![7, 8, 7, 8, 7, 8]);
    let entry = Entry {
        dtype: StoredDtype::U8,
        shape: vec![],
        strides: vec![],
        offset: 23,
        storage: 0,
    };
    assert_eq!(gather(&storage, 1, &entry).unwrap(), vec![23]);
    // Out of range is refused by check, and gather returns None rather than panicking.
    let entry = Entry {
        dtype: StoredDtype::U8,
        shape: vec![2, 3],
        strides: vec![3, 1],
        offset: 20,
        storage: 0,
    };
    assert!(entry.check(storage.len()).is_err());
    assert!(gather(&storage, 1, &entry).is_none());
    // A huge broadcast is refused before anything is allocated.
    let entry = Entry {
        dtype: StoredDtype::F32,
        shape: vec![1 << 40],
        strides: vec![0],
        offset: 0,
        storage: 0,
    };
    assert!(entry.check(4).unwrap_err().contains("expand"));
}

/// Opens (and, if that works, reads every tensor of) a possibly damaged file: whatever happens
/// must be an `Ok` or an `Err` that names the file, never a panic.
fn open_and_read_all(label: &str, bytes: Vec<u8>) -> std::result::Result<(), String> {
    match Weights::from_bytes(label, bytes) {
        Err(e) => {
            let shown = e.to_string();
            if shown.contains(label) {
                Ok(())
            } else {
                Err(format!("error does not name the file: {shown}"))
            }
        }
        Ok(w) => {
            for name in w.names() {
                // A flipped byte may make a tensor unreadable; it must not panic.
                let _ = w.tensor(name, &Device::Cpu);
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_byte_flips_never_panic(
        file in 0..GOOD.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..6),
    ) {
        let (name, _) = GOOD[file];
        let mut bytes = read(name);
        for (at, xor) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        prop_assert_eq!(open_and_read_all(&format!("flipped-{name}"), bytes), Ok(()));
    }

    #[test]
    fn random_flips_in_pickles_never_panic(
        legacy in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        // Aim at the pickle part, where a flip changes structure rather than values.
        let mut bytes = read(if legacy { "state_legacy.bin" } else { "state_zip_deflate.bin" });
        let span = if legacy { 2301 } else { bytes.len() };
        for (at, value) in flips {
            let i = at.index(span.min(bytes.len()));
            bytes[i] = value;
        }
        prop_assert_eq!(open_and_read_all("flipped-pickle.bin", bytes), Ok(()));
    }
}

#[test]
fn a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle() {
    // Header length 0x0280 (640): its first byte is the pickle PROTO opcode, the second a valid
    // protocol number.
    let mut json = String::from("{\"__metadata__\":{\"pad\":\"");
    while json.len() < 640 - 3 {
        json.push('x');
    }
    json.push_str("\"}}");
    assert_eq!(json.len(), 640);
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    assert_eq!(bytes[0], 0x80);
    assert_eq!(bytes[1], 0x02);
    assert_eq!(super::detect(&bytes), Ok(super::WeightsFormat::Safetensors));
}

/// Reading a tensor hands its mapped pages back (see `Weights::release`); reading it, or a tensor
/// on the pages next to it, again gives the same values (the pages come back from the file).
#[test]
fn released_pages_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let a: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.25 - 7.0).collect();
    let b: Vec<f32> = (0..3_000).map(|i| -(i as f32)).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (ab, bb) = (bytes(&a), bytes(&b));
    let views = vec![
        (
            "a",
            ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, vec![100, 100], &ab)
                .unwrap(),
        ),
        (
            "b",
            ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, vec![3_000], &bb)
                .unwrap(),
        ),
    ];
    ::safetensors::serialize_to_file(views, None, &path).unwrap();
    let w = Weights::open(&path).unwrap();
    assert!(matches!(w.file, FileBytes::Mapped(_)));
    let read = |name: &str| {
        w.tensor(name, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(read("a"), a);
        assert_eq!(read("b"), b);
    }
}
