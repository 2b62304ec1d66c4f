//! The deployment files, checked as far as this machine allows without Docker or
//! a Kubernetes API server: `deploy/check.py` validates the Kubernetes manifests
//! against the API's schemas (kubernetes-validate from PyPI, offline, strict)
//! and docker-compose.yml for consistency. Skipped with a message when PyPI
//! cannot be reached, unless `HOPLINE_REQUIRE_CLUSTER=1` (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

const VALIDATOR: &str = "kubernetes-validate==1.37.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A virtual environment with the validator, made once under the target dir.
fn venv() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-check-venv");
    if !venv.join("bin/kubernetes-validate").exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", VALIDATOR])
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            assert!(
                std::env::var("HOPLINE_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                "cannot install {VALIDATOR}, and HOPLINE_REQUIRE_CLUSTER=1"
            );
            eprintln!("skipped: cannot install {VALIDATOR} from PyPI");
            return None;
        }
    }
    Some(venv)
}

/// Runs `deploy/check.py` on the given files: its output, and whether it passed.
fn check(venv: &Path, files: &[&Path]) -> (bool, String) {
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(venv.join("bin/python"))
        .arg("deploy/check.py")
        .args(files)
        .current_dir(root())
        .env("PATH", path)
        .output()
        .expect("run deploy/check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_and_compose_file_are_valid() {
    let Some(venv) = venv() else {
        return;
    };
    let (ok, output) = check(&venv, &[]);
    assert!(ok, "{output}");

    // The checks can fail: a misspelt field, a dangling dependency.
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests =
        std::fs::read_to_string(root().join("deploy/kubernetes/hopline.yaml")).expect("manifests");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        manifests.replacen("serviceName:", "servicename:", 1),
    )
    .expect("write");
    let (ok, output) = check(&venv, &[&broken]);
    assert!(!ok && output.contains("servicename"), "{output}");

    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose");
    let broken_compose = dir.path().join("compose.yml");
    std::fs::write(
        &broken_compose,
        compose.replacen(
            "postgres: { condition: service_healthy }",
            "postgre: { condition: service_healthy }",
            1,
        ),
    )
    .expect("write");
    let manifests = root().join("deploy/kubernetes/hopline.yaml");
    let (ok, output) = check(&venv, &[&manifests, &broken_compose]);
    assert!(
        !ok && output.contains("unknown service postgre"),
        "{output}"
    );
}
