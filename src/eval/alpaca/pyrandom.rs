//! Python's `random.Random(seed_string)` (CPython's Mersenne Twister with its string seeding),
//! reproduced so seft shows the judge the two outputs in the same order as alpaca_eval, which
//! decides per instruction with `random.Random("is_switched_outputs" + instruction + "0")
//! .choices([False, True])`. Matching it lets a seft run be compared prompt for prompt with the
//! official annotations.

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

/// CPython's MT19937 state.
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a `str` seed (CPython ≥ 3.2, seeding version 2).
    pub fn from_str_seed(seed: &str) -> Self {
        let mut bytes = seed.as_bytes().to_vec();
        bytes.extend_from_slice(&Sha512::digest(seed.as_bytes()));
        // The bytes are one big-endian integer; CPython feeds its 32-bit words, least
        // significant first, to init_by_array.
        let first_nonzero = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let significant = &bytes[first_nonzero..];
        let mut key = Vec::with_capacity(significant.len().div_ceil(4));
        let mut end = significant.len();
        while end > 0 {
            let start = end.saturating_sub(4);
            let word = significant[start..end]
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | b as u32);
            key.push(word);
            end = start;
        }
        if key.is_empty() {
            key.push(0);
        }
        Self::from_key(&key)
    }

    fn from_key(key: &[u32]) -> Self {
        let mut mt = [0u32; N];
        mt[0] = 19_650_218;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        PyRandom { mt, index: N }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.random()`: 53 random bits in [0, 1).
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `random.choices(population, k=1)[0]` without weights: an index in 0..n.
    pub fn choice_index(&mut self, n: usize) -> usize {
        (self.random() * n as f64).floor() as usize
    }
}

/// Whether alpaca_eval shows the model's output first (switched) for this instruction.
pub fn is_switched(instruction: &str, seed: u64) -> bool {
    let seed = format!("is_switched_outputs{instruction}{seed}");
    PyRandom::from_str_seed(&seed).choice_index(2) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython() {
        // python3 -c "import random; print(repr(random.Random('abc').random()))" etc.
        assert_eq!(PyRandom::from_str_seed("abc").random(), 0.7720246314157545);
        assert_eq!(PyRandom::from_str_seed("").random(), 0.9602256525641875);
        assert_eq!(
            PyRandom::from_str_seed("is_switched_outputsWhat is 2+2?0").random(),
            0.05631924392020804
        );
        // [random.Random('x'*k).choices([False,True],k=1)[0] for k in range(12)]
        let expected = [1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1];
        for (k, &e) in expected.iter().enumerate() {
            assert_eq!(
                PyRandom::from_str_seed(&"x".repeat(k)).choice_index(2),
                e,
                "k={k}"
            );
        }
    }
}
