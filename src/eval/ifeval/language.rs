//! Language identification for IFEval's `language:response_language`,
//! `change_case:english_capital` and `change_case:english_lowercase`. The reference calls Python's
//! `langdetect` (a port of Shuyo's language-detection: character n-gram profiles of 55
//! languages, sampled with a random generator); seft uses `whatlang` (trigram profiles, no model
//! files, deterministic), restricted to the languages both know so that neither answers with a
//! language the other cannot name. Where they can disagree:
//!
//! - Swahili (`sw`), Somali (`so`), Albanian (`sq`), Welsh (`cy`) and traditional Chinese
//!   (`zh-tw`) are in langdetect but not in whatlang: a response in one of them is never
//!   identified as such, so `response_language` with `sw` (2 of IFEval's 541 prompts) fails
//!   where langdetect may pass it. whatlang's Mandarin is reported as `zh-cn` and its Bokmål as
//!   `no`.
//! - langdetect drops the n-grams of words written in capitals, so on all-capital text it
//!   decides from little evidence (its answer then depends on its seed); whatlang reads the
//!   letters as they are. On the 40 random `english_capital` cases of tests/ifeval.rs the two
//!   disagree on 19: langdetect calls all-capital English German 8 times where whatlang says
//!   English, whatlang calls it French, Italian, Vietnamese or Norwegian 9 times where
//!   langdetect says English, and on the other 2 they name English/Hindi and French/German.
//! - Short or mixed-language texts, where two different statistical models may simply differ
//!   ("can you ask a question in english?": whatlang French, langdetect English).
//!
//! A text with no letters at all is "no features" in langdetect, which the checkers count as
//! followed; `detect` returns `None` for it likewise.

use std::sync::OnceLock;

use whatlang::{Detector, Lang};

/// whatlang's languages that langdetect also identifies, with langdetect's codes.
const SHARED: &[(Lang, &str)] = &[
    (Lang::Afr, "af"),
    (Lang::Ara, "ar"),
    (Lang::Bul, "bg"),
    (Lang::Ben, "bn"),
    (Lang::Cat, "ca"),
    (Lang::Ces, "cs"),
    (Lang::Dan, "da"),
    (Lang::Deu, "de"),
    (Lang::Ell, "el"),
    (Lang::Eng, "en"),
    (Lang::Spa, "es"),
    (Lang::Est, "et"),
    (Lang::Pes, "fa"),
    (Lang::Fin, "fi"),
    (Lang::Fra, "fr"),
    (Lang::Guj, "gu"),
    (Lang::Heb, "he"),
    (Lang::Hin, "hi"),
    (Lang::Hrv, "hr"),
    (Lang::Hun, "hu"),
    (Lang::Ind, "id"),
    (Lang::Ita, "it"),
    (Lang::Jpn, "ja"),
    (Lang::Kan, "kn"),
    (Lang::Kor, "ko"),
    (Lang::Lit, "lt"),
    (Lang::Lav, "lv"),
    (Lang::Mkd, "mk"),
    (Lang::Mal, "ml"),
    (Lang::Mar, "mr"),
    (Lang::Nep, "ne"),
    (Lang::Nld, "nl"),
    (Lang::Nob, "no"),
    (Lang::Pan, "pa"),
    (Lang::Pol, "pl"),
    (Lang::Por, "pt"),
    (Lang::Ron, "ro"),
    (Lang::Rus, "ru"),
    (Lang::Slk, "sk"),
    (Lang::Slv, "sl"),
    (Lang::Swe, "sv"),
    (Lang::Tam, "ta"),
    (Lang::Tel, "te"),
    (Lang::Tha, "th"),
    (Lang::Tgl, "tl"),
    (Lang::Tur, "tr"),
    (Lang::Ukr, "uk"),
    (Lang::Urd, "ur"),
    (Lang::Vie, "vi"),
    (Lang::Cmn, "zh-cn"),
];

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| Detector::with_allowlist(SHARED.iter().map(|(l, _)| *l).collect()))
}

/// The language of `text` as langdetect's code (`en`, `de`, `zh-cn`, …), or `None` when the
/// text has nothing to identify it by.
pub fn detect(text: &str) -> Option<&'static str> {
    let lang = detector().detect_lang(text)?;
    SHARED
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, code)| *code)
}

/// Whether langdetect can name `code` (the `language` kwarg of `response_language`).
pub fn is_langdetect_code(code: &str) -> bool {
    LANGDETECT_CODES.contains(&code)
}

/// The 55 profiles langdetect 1.0.9 ships.
const LANGDETECT_CODES: &[&str] = &[
    "af", "ar", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr",
    "gu", "he", "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "lt", "lv", "mk", "ml", "mr", "ne",
    "nl", "no", "pa", "pl", "pt", "ro", "ru", "sk", "sl", "so", "sq", "sv", "sw", "ta", "te", "th",
    "tl", "tr", "uk", "ur", "vi", "zh-cn", "zh-tw",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_common_languages() {
        assert_eq!(
            detect("The quick brown fox jumps over the lazy dog near the river bank."),
            Some("en")
        );
        assert_eq!(
            detect("Der schnelle braune Fuchs springt über den faulen Hund am Fluss."),
            Some("de")
        );
        assert_eq!(
            detect("Быстрая коричневая лиса прыгает через ленивую собаку."),
            Some("ru")
        );
        assert_eq!(detect("तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।"), Some("hi"));
        assert_eq!(detect("123 !!! ..."), None);
        assert!(SHARED.iter().all(|(_, c)| is_langdetect_code(c)));
    }
}
