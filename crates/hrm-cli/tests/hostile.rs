//! Hostile input, as an attacker or a careless user would give it: each case ends in a clear error
//! for that input only, within seconds, with the rest of a batch processed and nothing outside
//! `--out` touched. Every case here hung, aborted, lost data or gave wrong answers before.

mod common;
use common::*;
use hrm_testkit::{resnet50, state_dict_pickle, vit, write_archive, write_checkpoint, Entry, Layout, Wrapper};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `hrm` and fails the test if it has not exited after `seconds` (a hang is the bug).
fn hrm_within(seconds: u64, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hrm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hrm binary runs");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("hrm {args:?} still ran after {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn package(dir: &Path) -> PathBuf {
    let package = dir.join("pkg");
    convert_fixture("resnet_basic", &package);
    package
}

/// A real JPEG whose frame header claims `width` x `height`.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = std::fs::read(&shared_images()[0]).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]).expect("a frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

fn rows(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn decompression_bombs_fail_alone_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let package = package(dir.path());
    let bomb = dir.path().join("bomb.jpg");
    std::fs::write(&bomb, jpeg_claiming(30000, 30000)).unwrap();
    let good = &shared_images()[1];
    let output = hrm_within(60, &["detect", "--aligned", "--model", path(&package), path(&bomb), path(good)]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("bomb.jpg") && text.contains("30000x30000") && text.contains("max_image_pixels"), "{text}");
    let rows = rows(&output);
    assert_eq!(rows.len(), 1, "the good image is still processed");
    assert!(rows[0]["file"].as_str().unwrap().ends_with(good.file_name().unwrap().to_str().unwrap()));

    // The budget is configuration: a lower one refuses a real photograph, by name.
    let config = dir.path().join("small.toml");
    std::fs::write(&config, format!("model = {:?}\nmax_image_pixels = 1000\n", path(&package))).unwrap();
    let output = hrm_within(60, &["detect", "--aligned", "--config", path(&config), path(good)]);
    assert!(!output.status.success() && stderr(&output).contains("limit of 1000"), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn folder_scans_follow_each_folder_once_and_skip_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let package = package(dir.path());
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(&shared_images()[0], photos.join("a.jpg")).unwrap();
    std::os::unix::fs::symlink(".", photos.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", photos.join("loop2")).unwrap();
    std::os::unix::fs::symlink("..", photos.join("up")).unwrap();
    let fifo = photos.join("pipe.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let output = hrm_within(60, &["detect", "--aligned", "--model", path(&package), path(&photos)]);
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert_eq!(rows(&output).len(), 1, "one image, reported once: {text}");
    assert!(text.contains("pipe.jpg") && text.contains("FIFO"), "the FIFO is noted: {text}");

    // A FIFO named on the command line is an error, and does not block.
    let output = hrm_within(60, &["detect", "--aligned", "--model", path(&package), path(&fifo)]);
    assert!(!output.status.success() && stderr(&output).contains("a FIFO, not"), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn configurations_checkpoints_and_detectors_that_are_devices_or_fifos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let images = shared_images();
    let image = path(&images[0]);
    for special in ["/dev/zero", path(&fifo)] {
        let output = hrm_within(30, &["detect", "--config", special, image]);
        assert!(!output.status.success() && stderr(&output).contains("not a regular file"), "{}", stderr(&output));
        let out = dir.path().join("pkg");
        let output = hrm_within(30, &["convert", special, "--out", path(&out)]);
        assert!(!output.status.success() && stderr(&output).contains("not a regular file"), "{}", stderr(&output));
        let config = dir.path().join("yunet.toml");
        let package = fixtures().join("packages/resnet_basic");
        std::fs::write(&config, format!("model = {:?}\n[detector]\nmodel = {special:?}\n", path(&package))).unwrap();
        let output = hrm_within(30, &["detect", "--config", path(&config), image]);
        assert!(!output.status.success() && stderr(&output).contains("not a regular file"), "{}", stderr(&output));
    }
}

#[test]
fn an_empty_folder_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join(".DS_Store"), "junk").unwrap();
    let output = hrm_within(
        30,
        &["detect", "--aligned", "--config", path(&repo().join("configs/hrm-package.toml")), path(&empty)],
    );
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains("no images found") && text.contains("1 files without an image extension"), "{text}");
}

#[cfg(unix)]
#[test]
fn package_files_that_are_devices_or_fifos_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let package = package(dir.path());
    std::fs::remove_file(package.join("model.onnx")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", package.join("model.onnx")).unwrap();
    let output = hrm_within(30, &["info", path(&package)]);
    assert!(
        !output.status.success() && stderr(&output).contains("a device, not a regular file"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_file(package.join("model.onnx")).unwrap();
    assert!(Command::new("mkfifo").arg(package.join("model.onnx")).status().unwrap().success());
    let output = hrm_within(30, &["info", path(&package)]);
    assert!(!output.status.success() && stderr(&output).contains("a FIFO, not a regular file"), "{}", stderr(&output));
}

#[test]
fn convert_never_deletes_a_folder_that_is_not_exactly_a_package() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = fixtures().join("resnet_basic.pth");
    let thesis = dir.path().join("thesis");
    std::fs::create_dir(&thesis).unwrap();
    std::fs::write(thesis.join("hrm-model.toml"), "my notes").unwrap();
    std::fs::write(thesis.join("thesis.tex"), "years of work").unwrap();
    let output = hrm_within(60, &["convert", path(&checkpoint), "--out", path(&thesis)]);
    let text = stderr(&output);
    assert!(!output.status.success() && text.contains("thesis.tex") && text.contains("not replaced"), "{text}");
    assert_eq!(std::fs::read_to_string(thesis.join("thesis.tex")).unwrap(), "years of work");

    // A real package with an extra file is not replaced either; a plain package is.
    let pkg = package(dir.path());
    std::fs::write(pkg.join("results.csv"), "1,2,3").unwrap();
    let output = hrm_within(60, &["convert", path(&checkpoint), "--out", path(&pkg)]);
    assert!(!output.status.success() && stderr(&output).contains("results.csv"), "{}", stderr(&output));
    std::fs::remove_file(pkg.join("results.csv")).unwrap();
    let output = hrm_within(60, &["convert", path(&checkpoint), "--out", path(&pkg)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("converting"));
    assert_eq!(leftovers.count(), 0, "no staging folder is left behind");
}

/// Converts `checkpoint`, expecting a failure that mentions every needle, fast, leaving nothing.
fn convert_refused(checkpoint: &Path, needles: &[&str]) {
    let out = checkpoint.with_extension("pkg");
    let output = hrm_within(60, &["convert", path(checkpoint), "--out", path(&out)]);
    let text = stderr(&output);
    assert!(!output.status.success(), "expected a failure: {text}");
    for needle in needles {
        assert!(text.contains(needle), "the error should mention {needle:?}: {text}");
    }
    assert!(!out.exists());
    let parent = checkpoint.parent().unwrap();
    let leftovers = std::fs::read_dir(parent)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("converting"));
    assert_eq!(leftovers.count(), 0, "no staging folder is left behind");
}

#[test]
fn checkpoint_memory_bombs_and_malformed_layouts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    // A ViT whose block index asks for a hundred million blocks.
    let mut entries = vit(64, 1, 16, 224, 22, true);
    entries.push(Entry {
        name: "blocks.100000000.norm1.weight".into(),
        shape: vec![64],
        init: hrm_testkit::Init::Constant(1.0),
    });
    let deep = dir.path().join("deep.pth");
    write_checkpoint(&deep, &entries, Wrapper::Model, 1).unwrap();
    convert_refused(&deep, &["deep.pth", "depth = 100000001", "1 to 128"]);

    // A storage whose element count overflows when multiplied by its element size.
    let entries = resnet50(22);
    let pickle = state_dict_pickle(&entries, Wrapper::TopLevel, |key| {
        (key == 0).then_some(Layout { storage_len: 1 << 62, stride: None })
    });
    let storages: Vec<(String, Vec<u8>)> = entries
        .iter()
        .enumerate()
        .map(|(k, e)| (k.to_string(), vec![0; 4 * e.shape.iter().product::<usize>()]))
        .collect();
    let wrapped = dir.path().join("wrapped.pth");
    write_archive(&wrapped, &pickle, &storages, false).unwrap();
    convert_refused(&wrapped, &["wrapped.pth", "conv1.weight", "more than the limit"]);

    // A storage entry far larger than its tensor's storage (64 MB of zeros, deflated to 64 KB):
    // refused from the size the zip declares, before anything is inflated.
    let pickle = state_dict_pickle(&entries, Wrapper::TopLevel, |_| None);
    let mut storages = storages;
    storages[0].1 = vec![0; 64 << 20];
    let inflating = dir.path().join("inflating.pth");
    write_archive(&inflating, &pickle, &storages, true).unwrap();
    convert_refused(&inflating, &["inflating.pth", "conv1.weight", "the archive declares 67108864 bytes"]);

    // A zero-stride view: one stored value stands for every element of the first tensor.
    let pickle = state_dict_pickle(&entries, Wrapper::TopLevel, |key| {
        (key == 0).then_some(Layout { storage_len: 1, stride: Some(vec![0; 4]) })
    });
    let mut one_value = storages.clone();
    one_value[0].1 = vec![0; 4];
    let repeated = dir.path().join("repeated.pth");
    write_archive(&repeated, &pickle, &one_value, false).unwrap();
    convert_refused(&repeated, &["repeated.pth", "conv1.weight", "more than its storage's 1"]);

    // A ResNet with a bottleneck's third convolution but no first one.
    let mut entries = resnet50(22);
    entries.retain(|e| e.name != "layer1.0.conv1.weight");
    let odd = dir.path().join("odd.pth");
    write_checkpoint(&odd, &entries, Wrapper::TopLevel, 1).unwrap();
    convert_refused(&odd, &["odd.pth", "layer1.0.conv1.weight"]);

    // One 16 MB bytes object referenced a million times from an 18 KB-ish pickle.
    let bomb = hrm_testkit::shared_bytes_pickle(16 << 20, 1_000_001);
    let copies = dir.path().join("copies.pth");
    write_archive(&copies, &bomb, &[], true).unwrap();
    convert_refused(&copies, &["copies.pth", "bytes of strings and bytes"]);
}

/// Copies the fixture package and edits its manifest (and files) with `edit`.
fn edited_package(dir: &Path, edit: impl FnOnce(&Path, String) -> String) -> PathBuf {
    let pkg = package(dir);
    let manifest = pkg.join("hrm-model.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(&pkg, text)).unwrap();
    pkg
}

/// Edits the package's `model.onnx` in place with `patch` and returns the manifest text `t` with
/// the graph's new sha256, so that the package loads as far as its graph check.
fn patch_graph(pkg: &Path, t: String, patch: impl FnOnce(&mut Vec<u8>)) -> String {
    let onnx = pkg.join("model.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    let old = hrm_core::manifest::sha256_bytes(&bytes);
    patch(&mut bytes);
    std::fs::write(&onnx, &bytes).unwrap();
    t.replace(&old, &hrm_core::manifest::sha256_bytes(&bytes))
}

#[test]
fn manifests_that_do_not_describe_their_graph_are_refused() {
    let image = &shared_images()[0];
    type Edit = Box<dyn Fn(&Path, String) -> String>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "probabilities on a logit graph",
            Box::new(|_, t: String| t.replace("output = \"logits\"", "output = \"probabilities\"")),
            &["declares output = \"probabilities\"", "values from 0 to 1"],
        ),
        (
            "an input size the graph does not take",
            Box::new(|_, t: String| t.replace("width = 224", "width = 256")),
            &["graph inputs", "[N, 3, 224, 256]", "found [input [N, 3, 224, 224]]"],
        ),
        (
            "a ViT manifest over a ResNet graph",
            Box::new(|_, t: String| {
                let start = t.find("[architecture]").unwrap();
                let end = t[start..].find("\n\n").map_or(t.len(), |e| start + e);
                let vit = "[architecture]\nkind = \"vit\"\nwidth = 64\ndepth = 1\nheads = 1\npatch_size = 16\nmlp_hidden = 256\npooling = \"mean\"\nlayer_norm_eps = 1e-6";
                format!("{}{vit}{}", &t[..start], &t[end..])
            }),
            &["graph weights", "missing cls_token"],
        ),
        (
            "a graph reading weights from an unhashed file",
            Box::new(|pkg: &Path, t: String| {
                std::fs::copy(pkg.join("model.safetensors"), pkg.join("extra.safetensors")).unwrap();
                patch_graph(pkg, t, |bytes| {
                    let at = bytes.windows(17).position(|w| w == b"model.safetensors").unwrap();
                    bytes[at..at + 17].copy_from_slice(b"extra.safetensors");
                })
            }),
            &["external data in `extra.safetensors`", "does not hash"],
        ),
        (
            "a weight whose external data runs past its shape",
            Box::new(|pkg: &Path, t: String| {
                // The first `length` value of the external data gains a leading 9, keeping its size.
                patch_graph(pkg, t, |bytes| {
                    let at = bytes.windows(6).position(|w| w == b"length").unwrap() + 8;
                    bytes[at] = b'9';
                })
            }),
            &["float32 data of its shape", "inside model.safetensors"],
        ),
    ];
    for (what, edit, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let pkg = edited_package(dir.path(), edit);
        let output = hrm_within(60, &["detect", "--aligned", "--model", path(&pkg), path(image)]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{what}: accepted: {text}");
        for needle in needles {
            assert!(text.contains(needle), "{what}: the error should mention {needle:?}: {text}");
        }
        assert!(rows(&output).is_empty(), "{what}: no AUs from a package that is not what it says");
    }
}

#[test]
fn a_checkpoint_given_as_a_package_gets_the_convert_command() {
    let checkpoint = fixtures().join("resnet_basic.pth");
    for args in [
        vec!["info", path(&checkpoint)],
        vec!["detect", "--aligned", "--model", path(&checkpoint), path(&shared_images()[0])],
    ] {
        let output = hrm_within(30, &args);
        let text = stderr(&output);
        assert!(!output.status.success());
        assert!(text.contains("PyTorch checkpoint") && text.contains("hrm convert"), "{text}");
        assert!(!text.contains("Not a directory"), "{text}");
    }
}

#[test]
fn fixture_packages_warn_that_their_numbers_mean_nothing() {
    let output = hrm_within(
        60,
        &["detect", "--aligned", "--config", path(&repo().join("configs/hrm-package.toml")), path(&shared_images()[0])],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("random-weight test fixture"), "{}", stderr(&output));
    let output = hrm_within(30, &["info", path(&fixtures().join("packages/resnet_basic"))]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("random-weight test fixture") && !text.contains("Hugging Rain Man authors"), "{text}");
}

#[test]
fn bench_bounds_its_arguments() {
    let pkg = fixtures().join("packages/resnet_basic");
    for (args, needle) in [
        (vec!["--batch", "100000"], "--batch 100000"),
        (vec!["--threads", "100000"], "--threads 100000"),
        (vec!["--detection", "--frame-size", "100000x100000"], "--frame-size 100000x100000"),
    ] {
        let mut all = vec!["bench", "--model", path(&pkg)];
        all.extend(args);
        let output = hrm_within(30, &all);
        assert!(!output.status.success() && stderr(&output).contains(needle), "{all:?}: {}", stderr(&output));
    }
}

#[cfg(unix)]
#[test]
fn file_names_stay_distinct_and_harmless_in_the_output() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let package = package(dir.path());
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    let image = &shared_images()[0];
    for name in [&b"caf\xe9.jpg"[..], b"caf\xe8.jpg", b"=cmd|calc!A1.jpg"] {
        std::fs::copy(image, photos.join(OsStr::from_bytes(name))).unwrap();
    }
    let output = hrm_within(60, &["detect", "--aligned", "--model", path(&package), path(&photos)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let files: Vec<String> = rows(&output).iter().map(|r| r["file"].as_str().unwrap().to_string()).collect();
    assert_eq!(files.len(), 3);
    assert!(
        files.iter().any(|f| f.ends_with("caf\\xe9.jpg")) && files.iter().any(|f| f.ends_with("caf\\xe8.jpg")),
        "{files:?}"
    );

    let csv = dir.path().join("predict.csv");
    let output = hrm_within(
        60,
        &["detect", "--aligned", "--model", path(&package), "--format", "csv", "--output", path(&csv), path(&photos)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let probabilities = std::fs::read_to_string(dir.path().join("predict_prob.csv")).unwrap();
    let cells: Vec<&str> = probabilities.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(cells.len(), 3);
    let photos_text = path(&photos);
    assert!(cells.iter().all(|c| c.starts_with(photos_text)), "{cells:?}");
    // Given as a bare file name the cell would start with `=`: it is neutralised.
    let output = Command::new(env!("CARGO_BIN_EXE_hrm"))
        .current_dir(&photos)
        .args([
            "detect",
            "--aligned",
            "--model",
            path(&package),
            "--format",
            "csv",
            "--output",
            path(&csv),
            "=cmd|calc!A1.jpg",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let probabilities = std::fs::read_to_string(dir.path().join("predict_prob.csv")).unwrap();
    let row = probabilities.lines().nth(1).unwrap();
    assert!(row.starts_with("'=cmd|calc!A1.jpg,"), "{row}");
}
