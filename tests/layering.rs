//! Arrows point down only (docs/architecture.md "Layering and style"): no module of the `idlcm`
//! crate (`shared/src`) names a module of a layer above its own. Reads the production sources
//! (not `*_tests.rs` files, not `#[cfg(test)]` modules at the end of a file, not comments) for
//! `crate::<module>` paths. No AWS, no build of anything: a file scan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use its own layer and those below it.
const LAYERS: &[&[&str]] = &[
    &["time", "error", "auth", "telemetry", "secrets", "metrics", "limits"],
    &["config"],
    &["scim"],
    &["assignment"],
    &["connector"],
    &["integration"],
    &["store", "queue"],
    &["delivery", "notify", "offboard"],
    &["service"],
    &["worker", "sweeper", "fuzzing"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.file_name().unwrap().to_string_lossy().ends_with("_tests.rs")
        {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `store` for `store/keys.rs`, `worker` for `worker.rs`.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The modules a source names as `crate::<module>`, outside comments and test modules.
fn uses(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
            rest = after;
        }
    }
    out
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 40, "found {} source files under {}", files.len(), root.display());
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&root, file);
        if module == "lib" {
            continue;
        }
        let own = layer_of(&module).unwrap_or_else(|| panic!("module {module} has no layer: add it to LAYERS"));
        for used in uses(&std::fs::read_to_string(file).unwrap()) {
            let Some(theirs) = layer_of(&used) else { continue };
            if theirs > own {
                upward.entry(file.strip_prefix(&root).unwrap().display().to_string()).or_default().push(used);
            }
        }
    }
    assert!(upward.is_empty(), "modules using a layer above their own: {upward:#?}");
}

#[test]
fn the_scan_sees_an_upward_arrow() {
    // The check itself: a store file naming the service layer is caught; comments and tests are not.
    let source = "use crate::time::now;\nlet x = crate::service::now(); // crate::worker\n#[cfg(test)]\nmod tests { use crate::worker; }\n";
    assert_eq!(uses(source), vec!["time", "service"]);
    assert!(layer_of("service") > layer_of("store"));
}
