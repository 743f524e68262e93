//! `hrm backends`: the backends built in, every plugin found with what it can use on this machine,
//! and every plugin refused with the reason.

use hrm_core::plugin;
use hrm_core::Config;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let folders = plugin::search_folders(&config.plugins.paths);
    let builtin = hrm_tract::registry();
    let discovery = plugin::discover(&folders, &builtin.names());
    let mut out = String::new();
    let _ = writeln!(out, "built in:");
    for name in builtin.names() {
        let _ = writeln!(out, "  {name:<14} tract {} on the CPU (cpu)", hrm_tract::TRACT_VERSION);
    }
    let _ = writeln!(out, "plugins (searched in order: {}):", join(&folders));
    if discovery.plugins.is_empty() {
        let _ = writeln!(out, "  none found");
    }
    for found in &discovery.plugins {
        let _ = writeln!(out, "  {:<14} {}", found.name, found.file.display());
        let options = config.backend_options(&found.name);
        match found.describe(&options) {
            Ok(description) => {
                let _ = writeln!(out, "  {:<14} version {}", "", description.version);
                if !description.runtime.is_empty() {
                    let _ = writeln!(out, "  {:<14} runs on {}", "", description.runtime);
                }
                for (device, why_not) in &description.devices {
                    let status =
                        why_not.as_ref().map_or("available".to_string(), |why| format!("not available: {why}"));
                    let _ = writeln!(out, "  {:<14}   {device:<9} {status}", "");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "  {:<14} cannot be used: {e}", "");
            }
        }
    }
    if !discovery.refused.is_empty() {
        let _ = writeln!(out, "refused:");
        for refusal in &discovery.refused {
            let _ = writeln!(out, "  {}: {}", refusal.file.display(), refusal.reason);
        }
    }
    crate::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn join(folders: &[std::path::PathBuf]) -> String {
    folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}
