//! The process-wide ONNX Runtime environment, loaded from a shared library at run time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{InferenceError, Result};

/// File name of the ONNX Runtime library the fetch script installs.
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// ONNX Runtime allows one environment per process; every session hangs off this one.
#[derive(Debug)]
pub struct OrtRuntime {
    env: ort::environment::Environment,
    library: PathBuf,
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

impl OrtRuntime {
    /// Where the library is expected: `ORT_DYLIB_PATH` when set, else
    /// `<models_dir>/onnxruntime/libonnxruntime.so.1.31.1`.
    pub fn default_library_path(ort_dylib_path: Option<&Path>, models_dir: &Path) -> PathBuf {
        match ort_dylib_path {
            Some(p) => p.to_owned(),
            None => models_dir.join("onnxruntime").join(ORT_LIBRARY_FILE),
        }
    }

    /// Loads the library once per process. Later calls return the same runtime (a different
    /// path on a later call is ignored: ONNX Runtime cannot be loaded twice).
    pub fn get_or_init(library: &Path) -> Result<&'static OrtRuntime> {
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        // `ort` panics deep inside when the library is absent; check first and say what to do.
        if !library.is_file() {
            return Err(InferenceError::RuntimeMissing {
                path: library.to_owned(),
            });
        }
        let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let load_err = |reason: String| InferenceError::RuntimeLoad {
            path: library.to_owned(),
            reason,
        };
        // Absolute, so ort does not look for a relative path beside the executable first.
        let library = &std::fs::canonicalize(library).map_err(|e| load_err(e.to_string()))?;
        let env = ort::init_from(library)
            .map_err(|e| load_err(e.to_string()))?
            .with_name("shopmind")
            .build()
            .map_err(|e| load_err(e.to_string()))?;
        tracing::info!(library = %library.display(), "ONNX Runtime loaded");
        Ok(RUNTIME.get_or_init(|| OrtRuntime {
            env,
            library: library.to_owned(),
        }))
    }

    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }

    pub fn library(&self) -> &Path {
        &self.library
    }
}
