//! Fuzzing the checkpoint reader (see `hrm_testkit::fuzz`): the pickle machine alone, the pickle
//! inside a valid checkpoint through recognition and tensor reads, and whole checkpoint files.

use hrm_convert::arch::{recognise, ArchOptions};
use hrm_convert::checkpoint::Checkpoint;
use hrm_testkit::fuzz::fuzz;
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The small fixture checkpoints.
fn checkpoints() -> Vec<Vec<u8>> {
    let files = ["resnet_basic.pth", "mae_face_cls.pth", "fmae_iat.pth"];
    files.iter().map(|f| std::fs::read(fixtures().join(f)).unwrap()).collect()
}

fn entries(checkpoint: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(checkpoint)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().to_string(), bytes)
        })
        .collect()
}

fn pickle_of(checkpoint: &[u8]) -> Vec<u8> {
    entries(checkpoint).into_iter().find(|(n, _)| n.ends_with("data.pkl")).unwrap().1
}

/// Opens a checkpoint file, finds its state dict, recognises it and reads every tensor.
fn load_everything(path: &Path) -> Result<(), String> {
    let mut checkpoint = Checkpoint::open(path).map_err(|e| e.to_string())?;
    let state = checkpoint.state_dict().map_err(|e| e.to_string())?;
    let recognised = recognise(path, &state.tensors, &ArchOptions::default()).map_err(|e| e.to_string())?;
    for (name, _) in &recognised.tensors {
        checkpoint.read_f32(name, &state.tensors[name]).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn fuzz_pickle_reader() {
    let seeds: Vec<Vec<u8>> = checkpoints().iter().map(|c| pickle_of(c)).collect();
    let report = fuzz("pickle", &seeds, |bytes| hrm_convert::pickle::load(bytes).map(|_| ()));
    assert!(report.runs > seeds.len() && report.accepted >= seeds.len(), "{report:?}");
}

#[test]
fn fuzz_the_pickle_of_a_checkpoint_through_recognition_and_tensor_reads() {
    let checkpoint = std::fs::read(fixtures().join("resnet_basic.pth")).unwrap();
    let storages: Vec<(String, Vec<u8>)> = entries(&checkpoint)
        .into_iter()
        .filter_map(|(n, b)| Some((n.split_once("/data/")?.1.to_string(), b)))
        .collect();
    let seeds = vec![pickle_of(&checkpoint)];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.pth");
    let report = fuzz("checkpoint-pickle", &seeds, |pickle| {
        hrm_testkit::write_archive(&path, pickle, &storages, false).map_err(|e| e.to_string())?;
        load_everything(&path)
    });
    assert!(report.runs > 1 && report.accepted >= 1, "{report:?}");
}

#[test]
fn fuzz_checkpoint_files() {
    let seeds = checkpoints();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.pth");
    let report = fuzz("checkpoint-file", &seeds, |bytes| {
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        load_everything(&path)
    });
    assert!(report.runs > seeds.len() && report.accepted >= seeds.len(), "{report:?}");
}
