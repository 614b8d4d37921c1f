//! A trained gate on disk (`weights.npy` and `gate.json`), and loaded with its embedder to
//! score answers.

use super::*;

/// What gate.json holds besides the weights.
#[derive(Debug, Serialize, Deserialize)]
struct SavedGate {
    threshold: f32,
    output_weights: Vec<f32>,
    mean: Vec<f32>,
}

/// Writes `dir/weights.npy` (m × d first layer) and `dir/gate.json`.
pub fn save_gate(gate: &QualityGate, dir: &Path) -> Result<()> {
    let net = gate.network();
    Matrix::new(net.weights().to_vec(), net.width(), net.dim())?
        .write_npy(&dir.join("weights.npy"))?;
    let saved = SavedGate {
        threshold: net.threshold(),
        output_weights: net.output_weights().to_vec(),
        mean: gate.mean().to_vec(),
    };
    let text = serde_json::to_string(&saved).map_err(|e| SeftError::Invalid(e.to_string()))?;
    write_atomic(&dir.join("gate.json"), text.as_bytes())
}

/// Reads what [`save_gate`] wrote.
pub fn load_gate(dir: &Path) -> Result<QualityGate> {
    let path = dir.join("gate.json");
    let text = crate::input::read_metadata(&path)?;
    let saved: SavedGate =
        serde_json::from_str(&text).map_err(|e| SeftError::file(&path, e.to_string()))?;
    let w = Matrix::read_npy(&dir.join("weights.npy"))?;
    let d = w.d();
    let net = ShiftedReluNet::new(w.into_data(), saved.output_weights, d, saved.threshold)
        .map_err(|e| SeftError::file(&path, e.to_string()))?;
    QualityGate::from_parts(net, saved.mean).map_err(|e| SeftError::file(&path, e.to_string()))
}

/// A trained gate with its embedder, for scoring answers during the run.
pub struct GateScorer {
    gate: QualityGate,
    embedder: TextEmbedder,
    batch_size: usize,
}

impl GateScorer {
    pub fn load(
        dir: &Path,
        embedder_spec: &str,
        batch_size: usize,
        device: &burn::tensor::Device,
    ) -> Result<Self> {
        Ok(GateScorer {
            gate: load_gate(dir)?,
            embedder: TextEmbedder::load(embedder_spec, device, GATE_MAX_TOKENS)?,
            batch_size: batch_size.max(1),
        })
    }

    /// Gate scores (positive = good) of answers, each as the text the gate was trained on.
    pub fn scores(&self, texts: &[String]) -> Result<Vec<f32>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = Matrix::from_rows(&self.embedder.embed(texts, self.batch_size)?)?;
        self.gate.scores(embeddings.data())
    }
}
