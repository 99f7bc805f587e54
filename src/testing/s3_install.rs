//! Installing the local S3 server (PyPI `moto[server]`) on first use, for the persistent broker.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    Error,
    install::{install_root, run},
};

/// The PyPI requirement that provides the local S3 server the persistent broker stores its data in.
pub const S3_SERVER_REQUIREMENT: &str = "moto[server]==5.2.5";

/// How to run the S3 server's Python: the interpreter and, for an install without a venv, the
/// `PYTHONPATH` that finds the package.
#[derive(Debug, Clone)]
pub(crate) struct S3Python {
    pub(crate) python: PathBuf,
    pub(crate) python_path: Option<PathBuf>,
}

/// The Python that runs `moto.server`, installing `moto[server]` first if needed.
///
/// Installed like Tansu: into `target/moto-server-<version>/` (a venv; `pip install --target` where the
/// venv module is missing), once; concurrent first uses install into private directories and the first
/// to finish wins by an atomic rename. The venv's `python` keeps working after the rename because it
/// finds its `pyvenv.cfg` next to itself.
pub(crate) fn s3_python() -> Result<S3Python, Error> {
    let version = S3_SERVER_REQUIREMENT
        .rsplit("==")
        .next()
        .unwrap_or(S3_SERVER_REQUIREMENT);
    let dir = install_root().join(format!("moto-server-{version}"));
    if let Some(found) = installed(&dir) {
        return Ok(found);
    }
    let mut staging = dir.clone().into_os_string();
    staging.push(format!(".staging-{}", std::process::id()));
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_dir_all(&staging);
    let result = install(&staging);
    if result.is_ok() && std::fs::rename(&staging, &dir).is_err() {
        // Another process installed it meanwhile; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
    }
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result?;
    installed(&dir).ok_or_else(|| Error::Install {
        dir: dir.clone(),
        message: format!("{S3_SERVER_REQUIREMENT} installed, but no moto package was found"),
    })
}

fn system_python() -> OsString {
    std::env::var_os("KAFKA_EVENT_BUS_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The venv's interpreter, or the system one with `site/` on its path, once `moto` is there.
fn installed(dir: &Path) -> Option<S3Python> {
    let venv_python = dir.join("bin").join("python");
    if venv_python.is_file() && has_moto(&dir.join("lib")) {
        return Some(S3Python {
            python: venv_python,
            python_path: None,
        });
    }
    let site = dir.join("site");
    if site.join("moto").is_dir() {
        return Some(S3Python {
            python: PathBuf::from(system_python()),
            python_path: Some(site),
        });
    }
    None
}

/// Whether `lib/python3.*/site-packages/moto` exists below `lib`.
fn has_moto(lib: &Path) -> bool {
    std::fs::read_dir(lib).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().join("site-packages").join("moto").is_dir())
    })
}

fn install(dir: &Path) -> Result<(), Error> {
    let python = system_python();
    eprintln!(
        "kafka-event-bus: installing the local S3 server ({S3_SERVER_REQUIREMENT}) into {}",
        dir.display()
    );
    let pip = |python: &Path| {
        let mut pip = Command::new(python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ]);
        pip
    };
    if run(Command::new(&python).args(["-m", "venv"]).arg(dir), dir).is_ok() {
        run(
            pip(&dir.join("bin").join("python")).arg(S3_SERVER_REQUIREMENT),
            dir,
        )
    } else {
        run(
            pip(Path::new(&python))
                .arg("--target")
                .arg(dir.join("site"))
                .arg(S3_SERVER_REQUIREMENT),
            dir,
        )
    }
}
