//! libhrm as its users get it: installed with tools/install.sh, then used from C (pkg-config),
//! C++ (CMake's find_package), the C++ wrapper under AddressSanitizer, C under valgrind, C
//! threads, and the Unity package's C# on mono. Needs cc, c++, pkg-config, cmake, valgrind,
//! mcs and mono (`.ci/run` installs them); a missing tool fails the test, never skips it.

use hrm_core::{Config, Runtime};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().expect("the repository")
}

fn shared() -> PathBuf {
    repo().join("../shared")
}

fn photo(name: &str) -> String {
    shared().join("images").join(name).display().to_string()
}

const PHOTOS: [&str; 6] =
    ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "multi_face.jpg", "single_face.jpg"];

/// Where cargo put the libhrm.so and libhrm.a it built for this test: beside the test, in
/// `target/<profile>/deps/` (the library is a dependency of its own tests, so always fresh).
fn built_libraries() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent().expect("target/<profile>/deps").to_path_buf()
}

/// An install prefix made once by tools/install.sh from the libraries cargo just built.
struct Install {
    dir: tempfile::TempDir,
    prefix: PathBuf,
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let prefix = dir.path().join("prefix");
        let output = Command::new("bash")
            .arg(repo().join("tools/install.sh"))
            .arg("--prefix")
            .arg(&prefix)
            .arg("--from")
            .arg(built_libraries())
            .output()
            .expect("bash runs tools/install.sh");
        assert_success("tools/install.sh", &output);
        for file in ["lib/libhrm.so", "lib/libhrm.so.1", "lib/libhrm.a", "include/hrm.h", "include/hrm.hpp"] {
            assert!(prefix.join(file).exists(), "the install has no {file}");
        }
        Install { dir, prefix }
    })
}

impl Install {
    fn lib(&self) -> PathBuf {
        self.prefix.join("lib")
    }

    /// `pkg-config --cflags --libs hrm`, split into arguments.
    fn pkg_config(&self) -> Vec<String> {
        let output = Command::new("pkg-config")
            .args(["--cflags", "--libs", "hrm"])
            .env("PKG_CONFIG_PATH", self.lib().join("pkgconfig"))
            .output()
            .expect("pkg-config runs (apt install pkg-config)");
        assert_success("pkg-config hrm", &output);
        String::from_utf8(output.stdout).unwrap().split_whitespace().map(String::from).collect()
    }

    /// Compiles one C or C++ source against the installed library, warnings as errors.
    fn compile(&self, compiler: &str, standard: &str, source: &Path, extra: &[&str]) -> PathBuf {
        self.compile_as(source.file_stem().unwrap().to_str().unwrap(), compiler, standard, source, extra)
    }

    /// As [`Install::compile`], into an executable of the given name.
    fn compile_as(&self, name: &str, compiler: &str, standard: &str, source: &Path, extra: &[&str]) -> PathBuf {
        let out = self.dir.path().join(name);
        let output = Command::new(compiler)
            .args([standard, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
            .args(extra)
            .arg(source)
            .args(self.pkg_config())
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("{compiler} runs: {e}"));
        assert_success(&format!("{compiler} {}", source.display()), &output);
        out
    }

    /// A command that finds libhrm.so in the install, run from the repository.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("LD_LIBRARY_PATH", self.lib()).current_dir(repo());
        command
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// A face as the examples print it.
#[derive(Debug)]
struct PrintedFace {
    bbox: Vec<f32>,
    keypoints: Vec<f32>,
    aus: Vec<(String, f32, bool)>,
}

/// Parses the examples' output: `PHOTO: N faces`, `face I score S bbox X Y W H keypoints ...`,
/// then one `  AU P [present]` line per AU. Checks the counts as it goes: N face lines per photo,
/// and the 22 AUs of the shipped package per face, so an output missing its faces or AUs fails.
fn parse(output: &str) -> Vec<(String, Vec<PrintedFace>)> {
    let mut photos: Vec<(String, usize, Vec<PrintedFace>)> = Vec::new();
    for line in output.lines() {
        let numbers = |words: &[&str]| words.iter().map(|w| w.parse::<f32>().unwrap()).collect::<Vec<_>>();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some((name, count)) = line.strip_suffix(" faces").and_then(|l| l.rsplit_once(": ")) {
            photos.push((name.to_string(), count.parse().expect("a face count"), Vec::new()));
        } else if words.first() == Some(&"face") {
            let face = PrintedFace { bbox: numbers(&words[5..9]), keypoints: numbers(&words[10..20]), aus: Vec::new() };
            photos.last_mut().expect("a photo line first").2.push(face);
        } else if line.starts_with("  ") {
            let face = photos.last_mut().and_then(|p| p.2.last_mut()).expect("a face line first");
            face.aus.push((words[0].to_string(), words[1].parse().unwrap(), words.get(2) == Some(&"present")));
        } else {
            panic!("unexpected line in the example's output: {line:?}");
        }
    }
    assert!(!photos.is_empty(), "no photographs in the output:\n{output}");
    for (name, count, faces) in &photos {
        assert_eq!(faces.len(), *count, "{name}: face lines against the announced count");
        for face in faces {
            assert_eq!(face.aus.len(), 22, "{name}: AU lines per face");
        }
    }
    photos.into_iter().map(|(name, _, faces)| (name, faces)).collect()
}

fn run_c_example() -> String {
    static OUTPUT: OnceLock<String> = OnceLock::new();
    OUTPUT
        .get_or_init(|| {
            let install = install();
            let exe = install.compile("cc", "-std=c11", &repo().join("examples/c/detect.c"), &[]);
            let output = install
                .command(exe)
                .arg("configs/hrm-package.toml")
                .args(PHOTOS.map(photo))
                .output()
                .expect("the example runs");
            assert_success("examples/c/detect.c", &output);
            stdout(&output)
        })
        .clone()
}

/// The C example, built with pkg-config, finds OpenCV's faces (an independent detector) and
/// gives exactly the AUs the Rust pipeline gives for the same photographs.
#[test]
fn c_example_agrees_with_opencv_and_the_rust_pipeline() {
    let printed = parse(&run_c_example());
    let opencv: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/opencv_yunet.json")).expect("the OpenCV reference"),
    )
    .unwrap();
    let config = Config::from_file(&repo().join("configs/hrm-package.toml")).unwrap();
    let mut pipeline = Runtime::load(config, &hrm_tract::registry()).unwrap().pipeline().unwrap();

    assert_eq!(printed.len(), PHOTOS.len());
    for ((path, faces), name) in printed.iter().zip(PHOTOS) {
        assert_eq!(path, &photo(name));
        let reference = opencv["images"][name]["faces"].as_array().unwrap();
        assert_eq!(faces.len(), reference.len(), "{name}: faces found through the C ABI vs OpenCV");
        for face in faces {
            let closest = reference
                .iter()
                .map(|r| {
                    let points: Vec<f32> = r["keypoints"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|p| p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
                        .collect();
                    points.iter().zip(&face.keypoints).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
                })
                .fold(f32::INFINITY, f32::min);
            assert!(closest <= 3.0, "{name}: keypoints {:.1} px from OpenCV's", closest);
        }

        let frame = hrm_core::image::decode_file(Path::new(path)).unwrap();
        let direct = pipeline.process(&frame.view()).unwrap();
        assert_eq!(direct.len(), faces.len(), "{name}: faces, C ABI vs Rust");
        for (face, direct) in faces.iter().zip(&direct) {
            for (printed, exact) in face.bbox.iter().zip(direct.face.bbox) {
                assert!((printed - exact).abs() <= 0.006, "{name}: box {:?} vs {:?}", face.bbox, direct.face.bbox);
            }
            let aus = pipeline.au_detector().aus().clone();
            assert_eq!(face.aus.len(), aus.len(), "{name}: AUs, C ABI vs Rust");
            for (a, (id, p, present)) in face.aus.iter().enumerate() {
                assert_eq!(id, aus.aus()[a].id);
                assert_eq!(*p, direct.aus.probabilities[a], "{name} {id}: probability, C ABI vs Rust");
                assert_eq!(*present, direct.aus.present[a], "{name} {id}: presence, C ABI vs Rust");
            }
        }
    }
}

/// tests/c/abi_growth.c built against version 1 of hrm.h, against today's, and against a header
/// newer than the library (a field more at the end of hrm_image and hrm_face): each runs against
/// today's library and reads the same faces; no call writes past the caller's struct_size or
/// into fields it does not know (the program checks that itself).
#[test]
fn programs_built_against_older_and_newer_headers_run() {
    let install = install();
    let today = std::fs::read_to_string(install.prefix.join("include/hrm.h")).unwrap();
    let future = today
        .replace("} hrm_image;", "  uint64_t future;\n} hrm_image;")
        .replace("} hrm_face;", "  uint64_t future;\n} hrm_face;");
    assert_eq!(future.matches("uint64_t future;").count(), 2, "both structs grew");
    let v1 = std::fs::read_to_string(repo().join("tests/c/hrm_v1.h")).unwrap();
    let headers = [("v1", v1, &[][..]), ("today", today, &[][..]), ("future", future, &["-DHRM_TEST_FUTURE"][..])];
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (name, header, defines) in &headers {
        let include = dir.path().join(name);
        std::fs::create_dir(&include).unwrap();
        std::fs::write(include.join("hrm.h"), header).unwrap();
        let mut extra = vec!["-I", include.to_str().unwrap()];
        extra.extend(defines.iter());
        let exe = install.compile_as(
            &format!("abi_growth_{name}"),
            "cc",
            "-std=c11",
            &repo().join("tests/c/abi_growth.c"),
            &extra,
        );
        let output =
            install.command(exe).arg("configs/hrm-package.toml").arg(photo("multi_face.jpg")).output().unwrap();
        assert_success(&format!("abi_growth built against the {name} header"), &output);
        runs.push(stdout(&output));
    }
    let lines =
        |run: &str, prefix: &str| run.lines().filter(|l| l.starts_with(prefix)).map(String::from).collect::<Vec<_>>();
    let sizes: Vec<Vec<String>> = runs.iter().map(|run| lines(run, "sizes")).collect();
    assert_eq!(sizes, [["sizes 48 96 faces 5"], ["sizes 48 224 faces 5"], ["sizes 56 232 faces 5"]]);
    let faces = lines(&runs[0], "face ");
    assert_eq!(faces.len(), 5, "{}", runs[0]);
    assert!(faces.iter().all(|f| f.contains(" aus 22 AU1=")), "{faces:?}");
    for run in &runs[1..] {
        assert_eq!(lines(run, "face "), faces, "the same faces, whatever the header");
    }
    // Only headers that know the crop transform see it; version 1's build read none of it.
    assert!(lines(&runs[0], "transform").is_empty());
    let transforms = lines(&runs[1], "transform");
    assert_eq!(transforms.len(), 5);
    assert_eq!(lines(&runs[2], "transform"), transforms);
    for line in &transforms {
        let m: Vec<f32> = line.split_whitespace().skip(2).map(|v| v.parse().unwrap()).collect();
        // A similarity: [a, -b, tx, b, a, ty] with a scale that shrinks a face to the crop.
        assert_eq!(m.len(), 6);
        assert!((m[0] - m[4]).abs() < 1e-3 && (m[1] + m[3]).abs() < 1e-3, "{line}");
        assert!(m[0].hypot(m[3]) > 0.05, "{line}");
    }
}

/// examples/cpp builds with `find_package(hrm)` and `hrm::hrm` alone, and its C++ program (through
/// hrm.hpp) prints exactly what the C example prints.
#[test]
fn cpp_example_builds_with_cmake_and_matches_the_c_example() {
    let install = install();
    let build = install.dir.path().join("cmake-build");
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(repo().join("examples/cpp"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", install.prefix.display()))
        .output()
        .expect("cmake runs (apt install cmake)");
    assert_success("cmake configure", &configure);
    assert_success("cmake build", &Command::new("cmake").arg("--build").arg(&build).output().unwrap());
    // CMake gives its executables an rpath into the install: no LD_LIBRARY_PATH needed.
    let cpp = Command::new(build.join("hrm_detect"))
        .current_dir(repo())
        .arg("configs/hrm-package.toml")
        .args(PHOTOS.map(photo))
        .output()
        .unwrap();
    assert_success("examples/cpp", &cpp);
    assert_eq!(stdout(&cpp), run_c_example(), "the C++ example prints what the C example prints");
    let c = Command::new(build.join("hrm_detect_c"))
        .current_dir(repo())
        .arg("configs/hrm-package.toml")
        .arg(photo("single_face.jpg"))
        .output()
        .unwrap();
    assert_success("examples/c built by CMake", &c);
}

/// A package whose weights no longer match the manifest's sha256.
fn bad_hash_package(dir: &Path) -> PathBuf {
    let good = repo().join("tests/fixtures/packages/resnet_basic");
    let bad = dir.join("bad_hash_package");
    std::fs::create_dir_all(&bad).unwrap();
    for entry in std::fs::read_dir(&good).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad.join(entry.file_name())).unwrap();
    }
    let weights = bad.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    bad
}

/// tests/c/abi_test.c: every function, used right and wrong, under valgrind: no invalid access,
/// no uninitialised read, nothing lost, not even possibly.
///
/// libhrm's own allocations go to mimalloc, which valgrind does not see; for a leak check that
/// covers them, `.ci/run` also builds libhrm on the system allocator and names it in
/// `HRM_SYSTEM_ALLOCATOR_LIBHRM`, and the program runs against that build.
#[test]
fn c_abi_test_is_clean_under_valgrind() {
    let install = install();
    let exe = install.compile("cc", "-std=c11", &repo().join("tests/c/abi_test.c"), &[]);
    let scratch = tempfile::tempdir().unwrap();
    let mut command = install.command("valgrind");
    match std::env::var_os("HRM_SYSTEM_ALLOCATOR_LIBHRM") {
        Some(library) => {
            let dir = scratch.path().join("system-allocator");
            std::fs::create_dir(&dir).unwrap();
            std::os::unix::fs::symlink(&library, dir.join("libhrm.so.1")).unwrap();
            command.env("LD_LIBRARY_PATH", &dir);
        }
        None if std::env::var_os("CI").is_some() => panic!("CI must set HRM_SYSTEM_ALLOCATOR_LIBHRM (.ci/run does)"),
        None => eprintln!("HRM_SYSTEM_ALLOCATOR_LIBHRM is not set: valgrind cannot see libhrm's own allocations"),
    }
    let output = command
        // valgrind's defaults count definite and possible leaks as errors: libhrm joins its
        // threads and frees what they registered when the objects that own them are freed.
        .args(["--error-exitcode=1", "--leak-check=full", "-q"])
        .arg(&exe)
        .arg(repo().join("configs/hrm-package.toml"))
        .arg(repo().join("tests/fixtures/packages/resnet_basic"))
        .arg(bad_hash_package(scratch.path()))
        .arg(format!("{}:1", photo("single_face.jpg")))
        .current_dir(scratch.path())
        .output()
        .expect("valgrind runs (apt install valgrind)");
    assert_success("tests/c/abi_test.c under valgrind", &output);
    assert!(stdout(&output).contains("all checks passed"));
}

/// tests/cpp/wrapper_test.cpp: hrm.hpp under AddressSanitizer (with LeakSanitizer) and UBSan.
#[test]
fn cpp_wrapper_test_is_clean_under_asan() {
    let install = install();
    let exe = install.compile(
        "c++",
        "-std=c++17",
        &repo().join("tests/cpp/wrapper_test.cpp"),
        &["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"],
    );
    let output = install
        .command(exe)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .arg("configs/hrm-package.toml")
        .arg(repo().join("tests/fixtures/packages/resnet_basic"))
        .arg(photo("multi_face.jpg"))
        .arg("5")
        .output()
        .unwrap();
    assert_success("tests/cpp/wrapper_test.cpp under ASan", &output);
    assert!(stdout(&output).contains("all checks passed"));
}

/// tests/c/threads.c: 4 threads x 250 frames on their own detectors, one shared runtime; every
/// result equals the single-threaded one.
#[test]
fn four_threads_share_a_runtime_and_agree_with_one() {
    let install = install();
    let exe = install.compile("cc", "-std=c11", &repo().join("tests/c/threads.c"), &["-pthread"]);
    let output = install
        .command(exe)
        .arg(repo().join("tests/fixtures/packages/resnet_basic"))
        .arg(shared().join("models/yunet_s_640_640.onnx"))
        .args(PHOTOS.map(photo))
        .output()
        .unwrap();
    assert_success("tests/c/threads.c", &output);
    assert!(stdout(&output).contains("4 threads x 250 frames: 0 results differ"), "{}", stdout(&output));
}

/// The Unity package's Runtime/ compiles with mcs, runs on mono against libhrm.so, and gives the
/// C example's faces and AUs.
#[test]
fn unity_binding_on_mono_matches_the_c_example() {
    let install = install();
    let exe = install.dir.path().join("HrmMonoTest.exe");
    let runtime = repo().join("examples/unity/com.hrm.runtime/Runtime");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&runtime)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cs"))
        .collect();
    sources.sort();
    sources.push(repo().join("tests/csharp/HrmMonoTest.cs"));
    let compile = Command::new("mcs")
        .args(["-langversion:7", "-warnaserror", "-target:exe"])
        .arg(format!("-out:{}", exe.display()))
        .args(&sources)
        .output()
        .expect("mcs runs (apt install mono-mcs)");
    assert_success("mcs", &compile);
    let output = install
        .command("mono")
        .arg(&exe)
        .arg("configs/hrm-package.toml")
        .args(PHOTOS.map(photo))
        .output()
        .expect("mono runs (apt install mono-runtime)");
    assert_success("the C# test on mono", &output);
    let csharp = parse(&stdout(&output));
    let c = parse(&run_c_example());
    assert_eq!(csharp.len(), c.len());
    for ((path, cs_faces), (_, c_faces)) in csharp.iter().zip(&c) {
        assert_eq!(cs_faces.len(), c_faces.len(), "{path}: faces, C# vs C");
        for (cs, c) in cs_faces.iter().zip(c_faces) {
            assert_eq!(cs.aus, c.aus, "{path}: AUs, C# vs C");
            for (a, b) in cs.bbox.iter().chain(&cs.keypoints).zip(c.bbox.iter().chain(&c.keypoints)) {
                assert!((a - b).abs() <= 0.011, "{path}: box or keypoints, C# vs C");
            }
        }
    }
}

/// The Unity-only parts (the `Color32[]` and `NativeArray<byte>` overloads, the WebCamTexture
/// sample) type-check with mcs against tests/csharp/UnityStubs.cs, which declares the Unity API
/// they use with Unity's signatures (Unity itself cannot run here).
#[test]
fn unity_only_code_compiles_against_unity_signatures() {
    let package = repo().join("examples/unity/com.hrm.runtime");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("mcs")
        .args(["-langversion:7", "-warnaserror", "-unsafe", "-target:library", "-define:UNITY_2018_1_OR_NEWER"])
        .arg(format!("-out:{}", dir.path().join("UnityCheck.dll").display()))
        .arg(package.join("Runtime/Hrm.cs"))
        .arg(package.join("Runtime/HrmNative.cs"))
        .arg(package.join("Samples~/WebCamAus/WebCamAuDisplay.cs"))
        .arg(repo().join("tests/csharp/UnityStubs.cs"))
        .output()
        .expect("mcs runs (apt install mono-mcs)");
    assert_success("mcs with UNITY_2018_1_OR_NEWER", &output);
}

/// tests/c/default_runtime.c: `hrm_runtime_new_from_string("", NULL, &runtime)` runs the models
/// built into libhrm, and its faces carry MediaPipe's blendshapes, head pose and landmarks: each
/// face MediaPipe's own FaceLandmarker finds (`../shared/reference`) is found, with blendshapes
/// within 0.01 and pose within 1 degree of MediaPipe's.
#[test]
fn the_default_runtime_from_c_gives_mediapipes_answers() {
    let install = install();
    let exe = install.compile("cc", "-std=c11", &repo().join("tests/c/default_runtime.c"), &["-lm"]);
    let output = install.command(exe).args(PHOTOS.map(photo)).output().unwrap();
    assert_success("tests/c/default_runtime.c", &output);
    let text = stdout(&output);
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("reference/mediapipe_face_landmarker.json")).unwrap(),
    )
    .unwrap();
    // Faces as printed: (photo, box centre, pose, landmark count, blendshapes, AUs not estimated).
    struct Printed {
        photo: String,
        centre: [f32; 2],
        pose: [f32; 3],
        landmarks: usize,
        shapes: Vec<(String, f32)>,
        unestimated: Vec<String>,
    }
    let mut faces: Vec<Printed> = Vec::new();
    let mut photo_name = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["photo", path, "faces", _] => photo_name = Path::new(path).file_name().unwrap().to_str().unwrap().into(),
            ["face", _, "bbox", x, y, w, h, "mesh", _, "has_pose", _, "pose", p, yaw, r, "landmarks", n, ..] => {
                let f = |s: &str| s.parse::<f32>().unwrap();
                faces.push(Printed {
                    photo: photo_name.clone(),
                    centre: [f(x) + f(w) / 2.0, f(y) + f(h) / 2.0],
                    pose: [f(p), f(yaw), f(r)],
                    landmarks: n.parse().unwrap(),
                    shapes: Vec::new(),
                    unestimated: Vec::new(),
                })
            }
            ["shape", name, value] => faces.last_mut().unwrap().shapes.push((name.to_string(), value.parse().unwrap())),
            ["au", id, "none"] => faces.last_mut().unwrap().unestimated.push(id.to_string()),
            ["au", ..] => {}
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert_eq!(faces.len(), 10, "faces YuNet finds in the six photographs:\n{text}");
    let mut compared = 0;
    for (name, want_faces) in reference.as_object().unwrap() {
        for want in want_faces.as_array().unwrap() {
            let b: Vec<f32> = want["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let centre = [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0];
            let got = faces
                .iter()
                .filter(|f| &f.photo == name)
                .min_by(|a, b| {
                    let d = |f: &Printed| (f.centre[0] - centre[0]).hypot(f.centre[1] - centre[1]);
                    d(a).total_cmp(&d(b))
                })
                .unwrap_or_else(|| panic!("{name}: no face"));
            assert_eq!((got.landmarks, got.shapes.len()), (478, 52), "{name}");
            assert_eq!(got.unestimated, ["AD19", "AU23", "AD32"], "{name}");
            for (shape, value) in &got.shapes {
                let diff = (value - want["blendshapes"][shape].as_f64().unwrap() as f32).abs();
                assert!(diff < 0.01, "{name} {shape}: {value} vs MediaPipe's {}", want["blendshapes"][shape]);
            }
            for (axis, value) in ["pitch", "yaw", "roll"].iter().zip(got.pose) {
                let diff = (value - want["pose"][axis].as_f64().unwrap() as f32).abs();
                assert!(diff < 1.0, "{name} {axis}: {value} vs MediaPipe's {}", want["pose"][axis]);
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 7);
}

/// tests/c/backend_parity.c's output: the device lines, and per photo its faces' AUs in order
/// (None where not estimated).
fn run_backend_parity(config: &str, model: &str, mode: &str) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    let install = install();
    let exe = EXE.get_or_init(|| install.compile("cc", "-std=c11", &repo().join("tests/c/backend_parity.c"), &["-lm"]));
    let config = repo().join(config).display().to_string();
    let output = install.command(exe).args([config.as_str(), model, mode]).args(PHOTOS.map(photo)).output().unwrap();
    assert_success(&format!("backend_parity {config} {mode}"), &output);
    let (mut devices, mut faces) = (Vec::new(), Vec::new());
    for line in stdout(&output).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["device", stage, device] => devices.push(format!("{stage} {device}")),
            ["photo", _, "faces", _] => {}
            ["au", "AU1", ..] => faces.push(vec![words[2].parse().ok()]),
            ["au", _, value] => faces.last_mut().expect("AU1 first").push(value.parse().ok()),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    (devices, faces)
}

/// configs/onnxruntime-cpu.toml from C, through the installed ONNX Runtime plugin (found beside
/// libhrm; the library from ORT_DYLIB_PATH): an AU model package on aligned faces gives tract's
/// AUs (configs/cpu.toml) within 1e-5; on whole frames, the same faces, and the built-in
/// estimator's AUs within the float noise that the face mesh amplifies.
#[test]
fn onnxruntime_from_c_gives_tracts_aus() {
    assert!(
        install().lib().join("libhrm_onnxruntime.so").exists(),
        "tools/install.sh installs the plugin beside libhrm"
    );
    assert!(install().prefix.join("include/hrm_plugin.h").exists());
    let package = repo().join("tests/fixtures/packages/resnet_basic").display().to_string();
    let (ort_devices, ort) = run_backend_parity("configs/onnxruntime-cpu.toml", &package, "aligned");
    let (tract_devices, tract) = run_backend_parity("configs/cpu.toml", &package, "aligned");
    assert_eq!(ort_devices, ["au onnxruntime:cpu", "detector onnxruntime:cpu", "mesh onnxruntime:cpu"]);
    assert_eq!(tract_devices, ["au tract:cpu", "detector tract:cpu", "mesh tract:cpu"]);
    assert_eq!((ort.len(), tract.len()), (PHOTOS.len(), PHOTOS.len()), "one aligned face per photo");
    let mut worst = 0f64;
    for (a, b) in ort.iter().zip(&tract) {
        assert_eq!((a.len(), b.len()), (22, 22));
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.expect("every AU estimated"), y.expect("every AU estimated"));
            worst = worst.max((x - y).abs());
        }
    }
    eprintln!("aligned faces: max |onnxruntime - tract| = {worst:.2e}");
    assert!(worst <= 1e-5, "{worst}");

    let (_, ort) = run_backend_parity("configs/onnxruntime-cpu.toml", "-", "frames");
    let (_, tract) = run_backend_parity("configs/cpu.toml", "-", "frames");
    assert_eq!(ort.len(), tract.len(), "the same faces");
    assert!(ort.len() >= PHOTOS.len());
    let mut worst = 0f64;
    for (a, b) in ort.iter().zip(&tract) {
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.is_some(), y.is_some(), "the same AUs estimated");
            worst = worst.max((x.unwrap_or(0.0) - y.unwrap_or(0.0)).abs());
        }
    }
    eprintln!("frames, built-in estimator: max |onnxruntime - tract| = {worst:.2e}");
    assert!(worst <= 2e-3, "{worst}");
}

/// tests/c/stream.c: the frames of a moving face (made by ffmpeg from a shared photograph) pushed
/// into an `hrm_stream` with the atypicality fixture; every face's track, box, AUs and score equal
/// hrm-core's own stream on the same frames, and the score appears from the 15th frame on.
#[test]
fn a_stream_from_c_tracks_and_scores_as_hrm_core_does() {
    let install = install();
    let dir = tempfile::tempdir().unwrap();
    let (width, height, fps, count) = (640usize, 480usize, 10.0, 20usize);
    let frames = dir.path().join("frames.rgb");
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=gray:s=640x480:r=10"])
        .arg("-i")
        .arg(photo("0-f1-su-ph.jpg"))
        .args(["-filter_complex", "[1:v]scale=200:200[f];[0:v][f]overlay=x='40+200*t':y=120", "-frames:v", "20"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
        .arg(&frames)
        .output()
        .expect("ffmpeg runs (apt install ffmpeg)");
    assert_success("ffmpeg", &output);
    let gru = dir.path().join("atypicality");
    let options = hrm_convert::ConvertOptions { fixture: true, ..Default::default() };
    hrm_convert::convert(&repo().join("tests/fixtures/atypicality_gru.pth"), &gru, &options).unwrap();

    let exe = install.compile("cc", "-std=c11", &repo().join("tests/c/stream.c"), &[]);
    let args = [gru.display().to_string(), frames.display().to_string(), width.to_string(), height.to_string()];
    let output = install.command(exe).args(args).arg("10").output().unwrap();
    assert_success("tests/c/stream.c", &output);
    let printed = stdout(&output);

    let config =
        Config::from_toml(&format!("[atypicality]\nmodel = {:?}\n", gru.display().to_string()), Path::new("x"));
    let runtime = Runtime::load(config.unwrap(), &hrm_tract::registry()).unwrap();
    let mut stream = runtime.stream().unwrap();
    let bytes = std::fs::read(&frames).unwrap();
    assert_eq!(bytes.len(), width * height * 3 * count);
    let mut lines = printed.lines();
    let mut scored = 0;
    for (n, pixels) in bytes.chunks(width * height * 3).enumerate() {
        let image = hrm_core::RgbImage { width, height, data: pixels.to_vec() };
        let faces = stream.push(&image.view(), n as f64 / fps).unwrap();
        assert_eq!(lines.next(), Some(format!("frame {} faces {}", n + 1, faces.len()).as_str()));
        assert_eq!(faces.len(), 1, "frame {}: one face", n + 1);
        for (i, face) in faces.iter().enumerate() {
            let line = lines.next().unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(&fields[..4], ["face", &i.to_string(), "track", &face.track_id.unwrap().to_string()], "{line}");
            let score: f32 = fields[5].parse().unwrap();
            match face.atypicality {
                Some(want) => {
                    assert!((score - want).abs() <= 1e-5, "frame {}: score {score} vs {want}", n + 1);
                    scored += 1;
                }
                None => assert!(score.is_nan(), "frame {}: a score before 15 frames", n + 1),
            }
            for (k, value) in fields[7..11].iter().enumerate() {
                assert!((value.parse::<f32>().unwrap() - face.face.bbox[k]).abs() <= 1e-3, "{line}");
            }
            for (a, p) in face.aus.probabilities.iter().enumerate() {
                let au = lines.next().unwrap();
                let printed: f32 = au.split_whitespace().nth(2).unwrap().parse().unwrap();
                assert!(
                    printed == *p || (printed - p).abs() <= 1e-6 || (printed.is_nan() && p.is_nan()),
                    "{au} vs {p}"
                );
                assert!(au.ends_with(&format!(" {}", u8::from(face.aus.present[a]))), "{au}");
            }
        }
    }
    assert_eq!(lines.next(), None);
    assert_eq!(scored, count - 14, "a score from the 15th frame on");
}
