//! `hrm` with the ONNX Runtime plugin: the shipped configurations, what `hrm backends`, `hrm info`
//! and `hrm bench` say of it, and the errors for a missing or wrong ONNX Runtime library and an
//! execution provider that cannot run. Needs ORT_DYLIB_PATH (`eval "$(tools/setup-onnxruntime.sh)"`).

mod common;
use common::*;
use std::process::Output;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn rows(output: &Output) -> Vec<serde_json::Value> {
    stdout(output).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every shipped ONNX Runtime configuration runs here, on the CPU: the GPU ones fall back to it
/// and say why on stderr; each finds the face in the sample and gives the AUs tract gives, to the
/// mesh's float noise (the AU model alone is held to 1e-5 by the C ABI test).
#[test]
fn the_shipped_onnxruntime_configurations_run_here_on_the_cpu() {
    let image = repo().join("samples/astronaut.png");
    let tract = hrm(&["detect", "--config", path(&repo().join("configs/cpu.toml")), path(&image)]);
    assert!(tract.status.success(), "{}", stderr(&tract));
    let tract = rows(&tract);
    assert_eq!(tract.len(), 1, "one face in the sample");
    for (name, falls_back) in [("onnxruntime-cpu", false), ("cuda", true), ("tensorrt", true), ("jetson", true)] {
        let config = repo().join(format!("configs/{name}.toml"));
        let output = hrm(&["detect", "--config", path(&config), path(&image)]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.contains("note: onnxruntime runs the au model on cpu: "), falls_back, "{name}: {err}");
        if falls_back {
            assert!(err.contains("cuda not used: "), "{name}: {err}");
        }
        let got = rows(&output);
        assert_eq!(got.len(), 1, "{name}: one face");
        let (a, b) = (got[0]["aus"].as_object().unwrap(), tract[0]["aus"].as_object().unwrap());
        assert_eq!(a.len(), b.len());
        for (id, value) in a {
            match (value.as_f64(), b[id].as_f64()) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 2e-3, "{name} {id}: onnxruntime {x}, tract {y}"),
                (x, y) => assert_eq!(x, y, "{name} {id}: estimated on one backend only"),
            }
        }
    }
}

#[test]
fn backends_info_and_bench_say_what_runs_each_model() {
    let output = hrm(&["backends"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("  tract          tract 0.23.9"), "{text}");
    assert!(text.contains("  onnxruntime    ") && text.contains("runs on ONNX Runtime 1."), "{text}");
    assert!(text.contains("cpu       available"), "{text}");
    assert!(text.contains("cuda      not available: "), "{text}");

    let output = hrm(&["info", "--backend", "onnxruntime"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for stage in
        ["au model       onnxruntime (cpu)", "face detector  onnxruntime (cpu)", "face mesh      onnxruntime (cpu)"]
    {
        assert!(text.contains(stage), "{stage}: {text}");
    }

    let package = fixtures().join("packages/resnet_basic");
    let args = ["bench", "--backend", "onnxruntime", "--model", path(&package), "--batch", "2", "--iterations", "2"];
    let output = hrm(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("model resnet_basic on onnxruntime (cpu) with "), "{text}");
    assert_eq!(text.lines().count(), 3, "a header line, the column names and one batch size: {text}");
}

/// Where the library is missing or wrong, the error says where the plugin looked, and
/// `hrm backends` still lists tract and the plugin itself.
#[test]
fn a_missing_or_wrong_onnxruntime_library_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_library = dir.path().join("libonnxruntime.so.1.99.0");
    std::fs::write(&not_a_library, "not a library").unwrap();
    let libm = std::path::Path::new("/lib/x86_64-linux-gnu/libm.so.6");
    let mut cases = vec![
        ("/nowhere/libonnxruntime.so".to_string(), "ORT_DYLIB_PATH names, /nowhere/libonnxruntime.so, does not exist"),
        (path(&not_a_library).to_string(), "the ONNX Runtime library cannot be loaded"),
    ];
    if libm.exists() {
        cases.push((path(libm).to_string(), "not an ONNX Runtime library (it exports no OrtGetApiBase)"));
    }
    let image = repo().join("samples/astronaut.png");
    for (library, expected) in cases {
        let output = hrm_command()
            .args(["detect", "--backend", "onnxruntime", path(&image)])
            .env("ORT_DYLIB_PATH", &library)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{library}");
        let err = stderr(&output);
        assert!(err.contains("backend `onnxruntime`") && err.contains(expected), "{library}: {err}");

        let output = hrm_command().arg("backends").env("ORT_DYLIB_PATH", &library).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains("  tract ") && text.contains("  onnxruntime "), "{text}");
        assert!(text.contains("cannot be used: ") && text.contains(expected), "{text}");
    }
    // Nothing set and nothing beside the plugin: every place looked is named.
    let output = hrm_command()
        .args(["detect", "--backend", "onnxruntime", path(&image)])
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(!output.status.success());
    assert!(
        err.contains("`[onnxruntime] library` is not set, ORT_DYLIB_PATH is not set, and there is no libonnxruntime.so* beside the plugin"),
        "{err}"
    );
    assert!(err.contains("tools/setup-onnxruntime.sh"), "{err}");
}

#[test]
fn cuda_without_fallback_is_an_error_on_a_machine_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cuda-only.toml");
    std::fs::write(&config, "backend = \"onnxruntime\"\n[onnxruntime]\nproviders = [\"cuda\"]\nfallback = false\n")
        .unwrap();
    let output = hrm(&["detect", "--config", path(&config), path(&repo().join("samples/astronaut.png"))]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("backend `onnxruntime`") && err.contains("no execution provider could run it: cuda: "),
        "{err}"
    );
    // A configuration that misspells an option is refused with the key, before anything loads.
    std::fs::write(&config, "backend = \"onnxruntime\"\n[onnxruntime.cuda]\ndevice = 0\n").unwrap();
    let output = hrm(&["detect", "--config", path(&config), path(&repo().join("samples/astronaut.png"))]);
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("`onnxruntime.cuda.device`: an unknown key"), "{err}");
    // A table for a backend that does not exist.
    std::fs::write(&config, "[onnxruntme]\nproviders = [\"cpu\"]\n").unwrap();
    let output = hrm(&["detect", "--config", path(&config), path(&repo().join("samples/astronaut.png"))]);
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("`[onnxruntme]`") && err.contains("onnxruntime"), "{err}");
}

/// configs/candle.toml as shipped: the AU model on candle, YuNet and the mesh on tract; the same
/// faces and AUs (1e-4) as configs/hrm-package.toml on tract. Built-in networks on candle are
/// refused with the configuration that runs them, and `hrm backends` lists candle's devices.
#[test]
fn the_shipped_candle_configuration_gives_tracts_answers_and_refuses_what_it_cannot_run() {
    let image = shared_images()[4].clone(); // multi_face.jpg
    let tract = hrm(&["detect", "--config", path(&repo().join("configs/hrm-package.toml")), path(&image)]);
    assert!(tract.status.success(), "{}", stderr(&tract));
    let candle = hrm(&["detect", "--config", path(&repo().join("configs/candle.toml")), path(&image)]);
    assert!(candle.status.success(), "{}", stderr(&candle));
    let (tract, candle) = (rows(&tract), rows(&candle));
    assert!(tract.len() >= 3, "faces in multi_face.jpg: {}", tract.len());
    assert_eq!(candle.len(), tract.len());
    for (c, t) in candle.iter().zip(&tract) {
        assert_eq!(c["bbox"], t["bbox"], "the same detector");
        let (a, b) = (c["aus"].as_object().unwrap(), t["aus"].as_object().unwrap());
        assert_eq!(a.len(), 22);
        for (id, x) in a {
            let (x, y) = (x.as_f64().unwrap(), b[id].as_f64().unwrap());
            assert!((x - y).abs() < 1e-4, "{id}: candle {x}, tract {y}");
        }
    }
    let output = hrm(&["detect", "--backend", "candle", path(&image)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("[detector] backend = \"tract\""), "{}", stderr(&output));
    let text = String::from_utf8(hrm(&["backends"]).stdout).unwrap();
    assert!(text.contains("candle") && text.contains("not available: this plugin was built without CUDA"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "backend = \"candle\"\n[candle]\ndevice = \"cpu\"\ndtype = \"f16\"\n").unwrap();
    let output = hrm(&["detect", "--config", path(&bad), path(&image)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("candle.dtype: F16 runs on CUDA only"), "{}", stderr(&output));
}
