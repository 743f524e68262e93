//! A small mutation fuzzer that runs as an ordinary test: it replays the saved crashing inputs of a
//! target (`tests/fuzz/<target>/`), then mutates seed inputs for a bounded time and feeds each
//! mutant to the target, which must return (an `Err` is fine) without panicking.
//!
//! It is not coverage-guided (no nightly toolchain or sanitizer runtime is available to CI here),
//! so it relies on structure-aware seeds and mutations: bit flips, byte values that break length
//! and count fields (0, 0xFF, 0x7F, 0x80, large 32- and 64-bit integers), truncation, insertion,
//! duplication and splicing of chunks. A process abort (an allocation that cannot be made) ends the
//! test run, which fails it just as a panic does.
//!
//! `HRM_FUZZ_SECONDS` sets the time per target (default 2); `HRM_FUZZ_SEED` the generator's seed.
//! A failing input is written to `target/fuzz-failures/<target>-<hash>`; copy it into
//! `tests/fuzz/<target>/` to keep it as a regression test.

use crate::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one run covered: mutants tried and how many the target accepted (returned `Ok`).
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub runs: usize,
    pub accepted: usize,
    pub regressions: usize,
}

/// Fuzzes `target` from `seeds` (at least one); see the module documentation.
pub fn fuzz<E>(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8]) -> Result<(), E>) -> Report {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut report = Report { runs: 0, accepted: 0, regressions: 0 };
    let run = |input: &[u8], report: &mut Report| {
        match catch_unwind(AssertUnwindSafe(|| target(input))) {
            Ok(Ok(())) => report.accepted += 1,
            Ok(Err(_)) => {}
            Err(panic) => {
                let saved = save_failure(&repo, name, input);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                panic!("{name}: the target panicked ({what}) on the input saved at {}", saved.display());
            }
        }
        report.runs += 1;
    };

    let regressions = repo.join("tests/fuzz").join(name);
    if let Ok(entries) = std::fs::read_dir(&regressions) {
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            run(&std::fs::read(&file).unwrap(), &mut report);
            report.regressions += 1;
        }
    }
    for seed in seeds {
        run(seed, &mut report);
    }

    let seconds = std::env::var("HRM_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let seed = std::env::var("HRM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_u64);
    let mut rng = Rng((seed ^ fnv1a(name.as_bytes())) | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut input = Vec::new();
    while Instant::now() < deadline {
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        for _ in 0..1 + rng.below(4) {
            mutate(&mut input, seeds, &mut rng);
        }
        run(&input, &mut report);
    }
    eprintln!(
        "fuzz {name}: {} inputs ({} saved regressions, {} seeds) in {seconds} s, {} accepted",
        report.runs,
        report.regressions,
        seeds.len(),
        report.accepted
    );
    report
}

fn save_failure(repo: &Path, name: &str, input: &[u8]) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
        .join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let hash = fnv1a(input);
    let path = dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

/// Values that break length, count and size fields.
const INTERESTING: [u64; 10] = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, u64::MAX];

fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    if input.is_empty() {
        input.push(rng.next() as u8);
        return;
    }
    let at = rng.below(input.len());
    match rng.below(8) {
        0 => input[at] ^= 1 << rng.below(8),
        1 => input[at] = rng.next() as u8,
        2 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1, 2, 4, 8][rng.below(4)].min(input.len() - at);
            let bytes = if rng.below(2) == 0 { value.to_le_bytes() } else { value.to_be_bytes() };
            input[at..at + width].copy_from_slice(&bytes[..width]);
        }
        3 => input.truncate(at),
        4 => {
            let len = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        5 => {
            let end = (at + 1 + rng.below(64)).min(input.len());
            input.drain(at..end);
        }
        6 => {
            let end = (at + 1 + rng.below(64)).min(input.len());
            let chunk = input[at..end].to_vec();
            let to = rng.below(input.len());
            input.splice(to..to, chunk);
        }
        _ => {
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len().max(1));
            let end = (from + 1 + rng.below(256)).min(other.len());
            let chunk = other.get(from..end).unwrap_or_default().to_vec();
            let to_end = (at + chunk.len()).min(input.len());
            input.splice(at..to_end, chunk);
        }
    }
}
