//! `random-checkpoint vit-b16|vit-l16|resnet50|me-graphau-r50|me-graphau-swin-t|me-graphau-swin-b|emofan OUT.pth`: a full-size HRM-layout checkpoint with
//! random weights, for benchmarks and shape tests (the numbers it gives mean nothing).

use hrm_testkit::{emofan, me_graphau_resnet50, me_graphau_swin, resnet50, vit, write_checkpoint, Wrapper};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(arch), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: random-checkpoint vit-b16|vit-l16|resnet50|me-graphau-r50|me-graphau-swin-t|me-graphau-swin-b|emofan OUT.pth");
        std::process::exit(2);
    };
    let (entries, wrapper) = match arch.as_str() {
        "vit-b16" => (vit(768, 12, 16, 224, 22, true), Wrapper::Model),
        "vit-l16" => (vit(1024, 24, 16, 224, 22, false), Wrapper::Model),
        "resnet50" => (resnet50(22), Wrapper::TopLevel),
        "me-graphau-r50" => (me_graphau_resnet50(22), Wrapper::StateDictWithModulePrefix),
        "me-graphau-swin-t" => {
            (me_graphau_swin(96, &[2, 2, 6, 2], &[3, 6, 12, 24], 22), Wrapper::StateDictWithModulePrefix)
        }
        "me-graphau-swin-b" => {
            (me_graphau_swin(128, &[2, 2, 18, 2], &[4, 8, 16, 32], 22), Wrapper::StateDictWithModulePrefix)
        }
        "emofan" => (emofan(22), Wrapper::TopLevel),
        other => {
            eprintln!("unknown architecture {other}: use vit-b16, vit-l16, resnet50, me-graphau-r50, me-graphau-swin-t, me-graphau-swin-b or emofan");
            std::process::exit(2);
        }
    };
    if let Err(e) = write_checkpoint(std::path::Path::new(out), &entries, wrapper, 1) {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    }
}
