//! Property tests of the numeric validators: whatever values a file or a config holds, a
//! validator that accepts them leaves nothing to overflow, divide by zero or go non-finite
//! downstream, and one that refuses them names the key.

use proptest::prelude::*;
use seft::model::config::{MlpKind, RopeScaling, rope_inv_freq};
use seft::model::{Architecture, ModelConfig};
use seft::numeric::Matrix;
use seft::numeric::validate::{check_finite, check_shape};
use seft::train::{LoraSection, TrainSection};

/// Any f64, with the special values and range edges validators must handle over-represented.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(-1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        -2.0..2.0f64,
        any::<f64>(),
    ]
}

/// Sizes from 0 to far beyond any real model, edges over-represented.
fn any_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(2),
        1usize..64,
        1usize..100_000,
        Just(1 << 20),
        Just((1 << 20) + 1),
        Just(u32::MAX as usize),
        Just(usize::MAX),
        any::<usize>(),
    ]
}

fn model_config() -> impl Strategy<Value = ModelConfig> {
    (
        (any_size(), any_size(), any_size(), any_size()),
        (any_size(), any_size(), any_size(), any_size()),
        (any_f64(), any_f64(), any_f64()),
        (any::<bool>(), any::<bool>(), any::<Option<u32>>()),
    )
        .prop_map(
            |(
                (vocab, hidden, inter, layers),
                (heads, kv, head_dim, ctx),
                (eps, theta, factor),
                (tie, bias, eos),
            )| ModelConfig {
                architecture: Architecture::Llama,
                vocab_size: vocab,
                hidden_size: hidden,
                intermediate_size: inter,
                num_hidden_layers: layers,
                num_attention_heads: heads,
                num_key_value_heads: kv,
                head_dim,
                rms_norm_eps: eps,
                rope_theta: theta,
                rope_scaling: if factor.is_sign_negative() {
                    RopeScaling::None
                } else {
                    RopeScaling::Linear { factor }
                },
                max_position_embeddings: ctx,
                tie_word_embeddings: tie,
                qkv_bias: bias,
                o_bias: bias,
                mlp: MlpKind::SwiGlu,
                relu_threshold: 0.0,
                bos_token_id: None,
                eos_token_ids: eos.into_iter().collect(),
                sliding_window: None,
                torch_dtype: "float32".into(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn an_accepted_model_config_has_a_countable_size_and_finite_rotary_frequencies(cfg in model_config()) {
        match cfg.validate() {
            Ok(()) => {
                prop_assert!(cfg.parameter_count() < u64::MAX);
                prop_assert!(cfg.num_attention_heads % cfg.num_key_value_heads == 0);
                prop_assert!(cfg.head_dim % 2 == 0 && cfg.num_hidden_layers >= 1);
                prop_assert!(cfg.rms_norm_eps > 0.0 && cfg.rms_norm_eps.is_finite());
                prop_assert!(cfg.eos_token_ids.iter().all(|&id| (id as usize) < cfg.vocab_size));
                if cfg.head_dim <= 4096 {
                    let inv = rope_inv_freq(&cfg);
                    prop_assert!(inv.iter().all(|f| f.is_finite() && *f >= 0.0), "{inv:?}");
                }
            }
            Err(msg) => {
                let keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
                    "rms_norm_eps", "rope_theta", "rope_scaling", "special token id", "the sizes describe"];
                prop_assert!(keys.iter().any(|k| msg.contains(k)), "{msg}");
            }
        }
    }

    #[test]
    fn an_accepted_config_survives_its_config_json(cfg in plausible_config()) {
        prop_assert_eq!(cfg.validate(), Ok(()));
        prop_assert!(rope_inv_freq(&cfg).iter().all(|f| f.is_finite() && *f > 0.0));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, cfg.to_hf_json().to_string()).unwrap();
        let back = ModelConfig::from_hf_json(&path).map_err(|e| e.to_string());
        prop_assert_eq!(back, Ok(cfg));
    }

    #[test]
    fn accepted_training_settings_are_in_their_ranges(
        lr in any_f64(), beta1 in any_f64(), beta2 in any_f64(), eps in any_f64(),
        weight_decay in any_f64(), max_grad_norm in any_f64(),
        micro_batch in 0usize..3, grad_accum in 0usize..3, log_every in 0usize..3,
    ) {
        let t = TrainSection { lr, beta1, beta2, eps, weight_decay, max_grad_norm, micro_batch,
            grad_accum, log_every, ..TrainSection::default() };
        match t.validate("reviser.") {
            Ok(()) => {
                prop_assert!(lr > 0.0 && lr.is_finite() && eps > 0.0 && eps.is_finite());
                prop_assert!((0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2));
                prop_assert!(weight_decay >= 0.0 && max_grad_norm >= 0.0);
                prop_assert!(weight_decay.is_finite() && max_grad_norm.is_finite());
                prop_assert!(micro_batch >= 1 && grad_accum >= 1 && log_every >= 1);
            }
            Err(msg) => prop_assert!(msg.contains("reviser.train."), "{msg}"),
        }
    }

    #[test]
    fn an_accepted_lora_rank_fits_every_targeted_projection(
        rank in 0usize..200, hidden in 1usize..128, inter in 1usize..128, heads in 1usize..8, head_dim in 1usize..32,
    ) {
        let mut cfg = seft::model::ModelConfig {
            hidden_size: hidden, intermediate_size: inter, num_attention_heads: heads,
            num_key_value_heads: 1, head_dim,
            ..tiny()
        };
        cfg.vocab_size = 8;
        let lora = LoraSection::new(rank, 16.0)
            .with_targets(&["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
        let smallest = [heads * head_dim, head_dim, hidden, inter].into_iter().min().unwrap();
        prop_assert_eq!(lora.check_fits(&cfg).is_ok(), rank <= smallest);
    }

    #[test]
    fn shapes_are_accepted_exactly_when_they_multiply_out(len in any_size(), rows in any_size(), cols in any_size()) {
        let ok = check_shape("points", len, rows, cols, "points").is_ok();
        prop_assert_eq!(ok, rows > 0 && cols > 0 && rows.checked_mul(cols) == Some(len));
    }

    #[test]
    fn values_are_accepted_exactly_when_finite(values in proptest::collection::vec(any::<f32>(), 0..20)) {
        prop_assert_eq!(check_finite("x", &values).is_ok(), values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn an_accepted_matrix_has_finite_squared_distances(
        values in proptest::collection::vec(prop_oneof![any::<f32>(), -1e19f32..1e19], 1..24),
        d in 1usize..4,
    ) {
        let n = values.len() / d;
        prop_assume!(n >= 1);
        let values = values[..n * d].to_vec();
        if Matrix::new(values.clone(), n, d).is_ok() {
            for a in values.chunks(d) {
                for b in values.chunks(d) {
                    let dist: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                    prop_assert!(dist.is_finite(), "{a:?} {b:?}");
                }
            }
        }
    }
}

/// Configs inside every range, with arbitrary floats there.
fn plausible_config() -> impl Strategy<Value = ModelConfig> {
    (
        (1usize..1000, 1usize..5, 1usize..4, 1usize..33),
        (1usize..300, 1usize..5, 1usize..5000),
        (
            1e-9..1e-1f64,
            1.0..1e7f64,
            prop_oneof![Just(None), (0.01..100.0f64).prop_map(Some)],
        ),
        (any::<bool>(), any::<bool>(), any::<u32>()),
    )
        .prop_map(
            |(
                (vocab, kv, group, half_head),
                (inter, layers, ctx),
                (eps, theta, factor),
                (tie, bias, eos),
            )| ModelConfig {
                vocab_size: vocab,
                hidden_size: kv * group * half_head * 2,
                intermediate_size: inter,
                num_hidden_layers: layers,
                num_attention_heads: kv * group,
                num_key_value_heads: kv,
                head_dim: half_head * 2,
                rms_norm_eps: eps,
                rope_theta: theta,
                rope_scaling: factor
                    .map_or(RopeScaling::None, |factor| RopeScaling::Linear { factor }),
                max_position_embeddings: ctx,
                tie_word_embeddings: tie,
                qkv_bias: bias,
                o_bias: bias,
                eos_token_ids: vec![eos % vocab as u32],
                ..tiny()
            },
        )
}

/// A small valid config to vary.
fn tiny() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: 8,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 1,
        head_dim: 4,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        max_position_embeddings: 16,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp: MlpKind::SwiGlu,
        relu_threshold: 0.0,
        bos_token_id: None,
        eos_token_ids: Vec::new(),
        sliding_window: None,
        torch_dtype: "float32".into(),
    }
}
