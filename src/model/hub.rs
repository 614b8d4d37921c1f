//! Hugging Face hub models through hf-hub: files come from the local cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`) when present, and are downloaded
//! otherwise unless `HF_HUB_OFFLINE=1`.

use std::path::PathBuf;

use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Result, SeftError};

const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
const OPTIONAL: &[&str] = &[
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Returns the snapshot folder holding the model's files, fetching what is missing.
pub fn fetch_model(id: &str, revision: Option<&str>) -> Result<PathBuf> {
    let repo = match revision {
        Some(rev) => Repo::with_revision(id.to_string(), RepoType::Model, rev.to_string()),
        None => Repo::model(id.to_string()),
    };
    let cache = Cache::from_env();
    let cached = cache.repo(repo.clone());
    let have_weights = cached.get("model.safetensors").is_some()
        || cached.get("model.safetensors.index.json").is_some();
    if REQUIRED.iter().all(|f| cached.get(f).is_some()) && have_weights {
        // Both hold: config.json is in REQUIRED, and a cached file sits in a snapshot folder.
        let config = cached.get("config.json").expect("checked above");
        let folder = config.parent().expect("snapshot folder").to_path_buf();
        // A sharded checkpoint needs every shard in the snapshot.
        let index = folder.join("model.safetensors.index.json");
        if !index.exists()
            || crate::model::weights::shards(&index)?
                .iter()
                .all(|s| folder.join(s).exists())
        {
            return Ok(folder);
        }
    }
    if offline() {
        return Err(SeftError::Invalid(format!(
            "hub model '{id}' is not complete in the cache {} and HF_HUB_OFFLINE=1",
            cache.path().display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| SeftError::Invalid(format!("hub model '{id}': {e}")))?;
    let remote = api.repo(repo);
    let get = |file: &str| {
        remote
            .get(file)
            .map_err(|e| SeftError::Invalid(format!("hub model '{id}': cannot fetch {file}: {e}")))
    };
    let config = get("config.json")?;
    get("tokenizer.json")?;
    for f in OPTIONAL {
        let _ = remote.get(f); // optional files may be absent from the repo
    }
    match remote.get("model.safetensors.index.json") {
        Ok(index) => {
            for shard in crate::model::weights::shards(&index)? {
                get(&shard)?;
            }
        }
        Err(_) => {
            get("model.safetensors")?;
        }
    }
    // hf-hub returns files inside a snapshot folder.
    Ok(config.parent().expect("snapshot folder").to_path_buf())
}
