//! Backend selection. Burn 0.22 dispatches on the `Device` at run time, so the model and
//! generation code are written once and the backend is a flag (`--backend`) or config value.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::SeftError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (default).
    Flex,
    /// The deprecated ndarray CPU backend (cargo feature `ndarray`).
    Ndarray,
    /// GPUs through wgpu (cargo feature `wgpu`).
    Wgpu,
}

impl FromStr for Backend {
    type Err = SeftError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flex" | "cpu" => Ok(Backend::Flex),
            "ndarray" => Ok(Backend::Ndarray),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            other => Err(SeftError::Invalid(format!(
                "unknown backend '{other}' (expected flex, ndarray or wgpu)"
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        })
    }
}

impl Default for Backend {
    /// The CPU backend compiled in: flex, or ndarray in a build without flex (configs and
    /// flags that name no backend then still get one that exists).
    fn default() -> Self {
        if cfg!(feature = "flex") {
            Backend::Flex
        } else {
            Backend::Ndarray
        }
    }
}

impl Backend {
    /// The device for this backend, or an error saying which cargo feature is missing.
    pub fn device(self) -> Result<Device, SeftError> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(SeftError::Invalid(format!(
                "backend '{other}' is not compiled in: rebuild with `--features {other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_backend_is_compiled_in() {
        let default = Backend::default();
        assert!(default.device().is_ok(), "{default} has no device");
        assert_eq!(default.to_string().parse::<Backend>().unwrap(), default);
    }
}
