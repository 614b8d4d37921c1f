//! IFEval's own unit tests of its instruction checkers, translated to seft's port
//! (`seft::eval::ifeval::Instruction`): one `#[test]` per test method of the reference, named
//! after it, with the reference's inputs and expected verdicts unchanged.
//!
//! Translated from google-research's `instruction_following_eval/instructions_test.py` at
//! commit 45e9105107b32edd1c0e88af4e129541f1caad7c and `instructions_util_test.py` at commit
//! 5b09c22d73a9d35eb6c5d2a99b95677a45053466 (Apache-2.0, "Instruction-Following Evaluation for
//! Large Language Models", Zhou et al. 2023, arXiv:2311.07911).
//!
//! How the translation reads:
//! - `instruction.build_description(**kw)` then `check_following(text)` is
//!   `Instruction::parse(registry_id, &json!(kw))` then `check(text)`; the reference tests name
//!   some checkers by ids that are not the registry's (`keywords:include_keywords`,
//!   `detectable_format:exact_number_bullet_points`, ...); here every checker goes by its id in
//!   `instructions_registry.INSTRUCTION_DICT`.
//! - seft requires every kwarg the reference would otherwise draw at random; every translated
//!   test already gives all of its checker's kwargs, so none had to be supplied.
//! - `parameterized.named_parameters` becomes a table inside one test; each case's
//!   `testcase_name` is in its assertion message. `subTest`s become assertions in sequence.
//!
//! Not translated:
//! - `test_constrained_start_checker`, `test_rephrase_checker`, `test_key_sentences`,
//!   `test_rephrase_paragraph`: their checkers (ConstrainedStartChecker, RephraseChecker,
//!   KeySentenceChecker, RephraseParagraph) are not in IFEval's registry, so seft has none.
//! - `test_get_instruction_args`: checks that a checker's description survives a round trip
//!   through its drawn kwargs; seft builds no descriptions and draws nothing.
//! - The description assertion of `test_letter_frequency_checker_accepts_punctuation`
//!   (`'letter #' in description`), for the same reason; its verdicts are kept.
//! - From `instructions_util_test.py`: `test_sentence_splitter` (`split_into_sentences`, the
//!   regex splitter only KeySentenceChecker uses) and `test_generate_keywords` (random
//!   keywords for building prompts).
//!
//! `detectable_format:json_format` has no test in the reference; `test_json_format` is seft's
//! own, as are the tests after the translated ones: bad kwargs (which seft refuses where the
//! reference would draw a random value) and strict/loose judging.

use seft::eval::ifeval::evaluate::{IfevalPrompt, judge};
use seft::eval::ifeval::punkt::count_sentences;
use seft::eval::ifeval::pytext::count_words;
use seft::eval::ifeval::{INSTRUCTION_IDS, Instruction};
use serde_json::{Value, json};

/// `_COMPARISON_RELATION[0]`.
const LESS_THAN: &str = "less than";
/// `_COMPARISON_RELATION[1]`.
const AT_LEAST: &str = "at least";

/// `_POSTSCRIPT_MARKER[0]`.
const POSTSCRIPT_MARKER_PS: &str = "P.S.";
/// `_POSTSCRIPT_MARKER[1]`.
const POSTSCRIPT_MARKER_PPS: &str = "P.P.S";

/// The checker `id` with `kwargs`, which must be accepted.
fn instruction(id: &str, kwargs: Value) -> Instruction {
    Instruction::parse(id, &kwargs).unwrap_or_else(|e| panic!("{id} with {kwargs}: {e}"))
}

/// The error for checker `id` with `kwargs`, which must be refused.
fn refusal(id: &str, kwargs: Value) -> String {
    match Instruction::parse(id, &kwargs) {
        Ok(i) => panic!("{id} with {kwargs} was accepted as {i:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that the refusal of `id` with `kwargs` names the instruction and `names` (the kwarg).
fn assert_refused(id: &str, kwargs: Value, names: &str) {
    let message = refusal(id, kwargs.clone());
    assert!(
        message.contains(id),
        "{id} with {kwargs}: {message:?} does not name {id}"
    );
    assert!(
        message.contains(names),
        "{id} with {kwargs}: {message:?} does not name {names}"
    );
}

// ---------------------------------------------------------------------------------------------
// language:response_language

#[test]
fn test_response_language() {
    let id = "language:response_language";
    let cases: &[(&str, &str)] = &[("The response is English", "en")];
    for &(response, language) in cases {
        let name = format!("_response={response}_language={language}");
        assert!(
            instruction(id, json!({ "language": language })).check(response),
            "{name}"
        );
    }
}

/// The reference pins langdetect's seed (`DetectorFactory.seed == 0`) so that its verdicts are
/// reproducible; whatlang has no seed and is deterministic, which is what this checks.
#[test]
fn test_language_detection_seed_is_fixed() {
    let texts = [
        "The response is English",
        "Desayunamos en McDonald's hoy",
        "THIS IS AN ENGLISH SENTENCE. EVERY LETTER IS CAPITALIZED!!! AMAZING.",
        "ok",
    ];
    for text in texts {
        let first = seft::eval::ifeval::language::detect(text);
        for _ in 0..20 {
            assert_eq!(
                seft::eval::ifeval::language::detect(text),
                first,
                "{text:?}"
            );
        }
    }
}

#[test]
fn test_response_multilanguage() {
    let id = "language:response_language";
    for (response, language) in [
        ("Desayunamos en McDonald's hoy", "es"),
        ("Today we visit the Louvre", "en"),
    ] {
        let name = format!("_response={response}_language={language}");
        assert!(
            instruction(id, json!({ "language": language })).check(response),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// length_constraints:number_sentences

#[test]
fn test_number_sentences() {
    let id = "length_constraints:number_sentences";
    let cases = [
        ("xx,x. xx,x! xx/x. x{x}x?", LESS_THAN, 4, false),
        ("xxxx. xx,x! xxxx. x(x)x?", LESS_THAN, 5, true),
        ("xxxx. xx,x! xx|x. x&x x?", AT_LEAST, 4, true),
        ("xx-x. xx,x! xx}x. x,xx?", AT_LEAST, 5, false),
    ];
    for (response, relation, num_sentences, expected) in cases {
        let name = format!(
            "_response={response}_relation={relation}\
             _num_sentences={num_sentences}_expected={expected}"
        );
        let i = instruction(
            id,
            json!({ "relation": relation, "num_sentences": num_sentences }),
        );
        assert_eq!(i.check(response), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_content:number_placeholders

#[test]
fn test_number_placeholders() {
    let id = "detectable_content:number_placeholders";
    let template_1 = concat!(
        "Sure, here is a short template with 5 placeholders:\n",
        "[Name]\n[Email]\n[Phone]\n[Address]\n[Website]\n",
        "This template can be used for a variety of purposes, such ",
        "ascreating a contact list, sending out surveys, or creating ",
        "a sign-up form."
    );
    let template_2 = "My [adjective] [noun] is [adjective] [noun]. I [verb] and [verb].";
    for (template, num_placeholders, expected) in [(template_1, 5, true), (template_2, 7, false)] {
        let name = format!(
            "_templated={template}_num_placeholders={num_placeholders}_expected={expected}"
        );
        let i = instruction(id, json!({ "num_placeholders": num_placeholders }));
        assert_eq!(i.check(template), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_format:number_bullet_lists

const BULLET_TEST_MESSAGE_1: &str = r#"
  A Markdown bullet point is a way of formatting text to create a list. To
  create a bullet point, start each line with an asterisk (*). For example:
  * This is a bullet point.
  *(no space required)Another bullet point.
  * (no newline ending required)Another bullet point.
  markdown bullet points are often used to create to-do lists or to list items
  in a step-by-step guide."#;

const BULLET_TEST_MESSAGE_2: &str = r#"
  Check that inline asterisk (*), *, will not be counted. Only * that starts a
  bullet list will be counted:
    * This is a bullet point.
    * Another bullet point.
    . dot is not counted"#;

const BULLET_TEST_MESSAGE_3: &str = r#"
  Here are three bullets starting with asterisk:
  * I am a large language model, also known as a conversational AI.
  * I am trained on a massive amount of text data, and I am able to communicate.
  * I am still under development, but I am learning new things every day."#;

const BULLET_TEST_MESSAGE_4: &str = r#"
  Here are three markdown bullets:
  - I am a large language model, also known as a conversational AI.
  - I am trained on a massive amount of text data, and I am able to communicate.
  -I am still under development, but I am learning new things every day."#;

const BULLET_TEST_MESSAGE_5: &str = r#"
  Paragraph 1
  ***
  Paragraph 2
  ***
  Paragraph 3
  * only one bullet point
  "#;

#[test]
fn test_number_bullet_lists() {
    // The reference test calls the checker `detectable_format:exact_number_bullet_points`.
    let id = "detectable_format:number_bullet_lists";
    let cases = [
        (BULLET_TEST_MESSAGE_1, 3, true),
        (BULLET_TEST_MESSAGE_2, 2, true),
        (BULLET_TEST_MESSAGE_3, 3, true),
        (BULLET_TEST_MESSAGE_4, 3, true),
        (BULLET_TEST_MESSAGE_5, 1, true),
    ];
    for (template, num_bullets, expected) in cases {
        let name = format!("_templated={template}_num_bullets={num_bullets}_expected={expected}");
        let i = instruction(id, json!({ "num_bullets": num_bullets }));
        assert_eq!(i.check(template), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_format:constrained_response

const CONSTRAINED_RESPONSE_TEST_RESPONSE_1: &str = "\n My answer is no.\n";
const CONSTRAINED_RESPONSE_TEST_RESPONSE_2: &str = "My answer is no.   ";
const CONSTRAINED_RESPONSE_TEST_RESPONSE_3: &str = r#"
  My answer is no. I am still under development and I am always learning and
  improving. I am not the best chatbot in the world, but I am striving to be
  the best that I can be."#;

#[test]
fn test_constrained_response() {
    let i = instruction("detectable_format:constrained_response", json!({}));
    for (name, response) in [
        (
            "CONSTRAINED_RESPONSE_TEST_RESPONSE_1",
            CONSTRAINED_RESPONSE_TEST_RESPONSE_1,
        ),
        (
            "CONSTRAINED_RESPONSE_TEST_RESPONSE_2",
            CONSTRAINED_RESPONSE_TEST_RESPONSE_2,
        ),
        (
            "CONSTRAINED_RESPONSE_TEST_RESPONSE_3",
            CONSTRAINED_RESPONSE_TEST_RESPONSE_3,
        ),
    ] {
        assert!(i.check(response), "test with {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_format:number_highlighted_sections

const HIGHLIGHTED_TEST_MESSAGE_1: &str = r#"
  To highlight text with Markdown, you can use the * character before and after
  the text you want to highlight. For example, if you want to highlight the
  word `hello`, you would type:*hello*, You can also use the ** character to
  create bold text. For example, if you want to bold the word `hello`, you
  would type: **hello** "#;

const HIGHLIGHTED_TEST_MESSAGE_2: &str = r#"
  Sure, here are the numerical methods for solving partial differential
  equations highlighted with Markdown:
  *Finite difference methods
  *Finite element methods*
  *Boundary element methods
  *Monte Carlo methods
  I hope this helps!"#;

const HIGHLIGHTED_TEST_MESSAGE_3: &str = r#"
  There is allowed to be *two different* highlighted *sections in the same*
  line. **This is also true** for **double markdown highlights.**
  "#;

#[test]
fn test_number_highlights() {
    // The reference test calls the checker
    // `detectable_format:minimum_number_highlighted_sections`.
    let id = "detectable_format:number_highlighted_sections";
    let cases = [
        (HIGHLIGHTED_TEST_MESSAGE_1, 2, true),
        (HIGHLIGHTED_TEST_MESSAGE_2, 2, false),
        (HIGHLIGHTED_TEST_MESSAGE_3, 4, true),
    ];
    for (response, min_num_highlights, expected) in cases {
        let name = format!(
            "_response={response}_min_num_highlights={min_num_highlights}_expected={expected}"
        );
        let i = instruction(id, json!({ "num_highlights": min_num_highlights }));
        assert_eq!(i.check(response), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_format:multiple_sections

const SECTION_TEST_MESSAGE_1: &str = r#"
  Your response must have multiple sections. Mark the beginning of each section
  with "Section X", such as:
  Section 1
  [content of section 1]
  Section 2
  [content of section 2]"#;

const SECTION_TEST_MESSAGE_2: &str = r#"SECTION 1
  [content of section 1]
  SECTION 2
  [content of section 2]"#;

#[test]
fn test_section_checker() {
    let id = "detectable_format:multiple_sections";
    let i = instruction(
        id,
        json!({ "section_spliter": "Section", "num_sections": 3 }),
    );
    assert!(!i.check(SECTION_TEST_MESSAGE_1), "test Section and 3");

    let i = instruction(
        id,
        json!({ "section_spliter": "SECTION", "num_sections": 2 }),
    );
    assert!(i.check(SECTION_TEST_MESSAGE_2), "test SECTION and 2");
}

// ---------------------------------------------------------------------------------------------
// length_constraints:number_paragraphs

const PARAGRAPH_TEST_MESSAGE_1: &str = r#"
  paragraph 1
  ***
  paragraph 2
  ***
  paragraph 3"#;

const PARAGRAPH_TEST_MESSAGE_2: &str = r#"
          ***
  paragraph 1
          ***
      paragraph 2
          ***
      paragraph 3"#;

const PARAGRAPH_TEST_MESSAGE_3: &str = r#"
  paragraph 1
          ***
      paragraph 2
          ***
      paragraph 3
          ***"#;

const PARAGRAPH_TEST_MESSAGE_4: &str = r#"
  paragraph 1
          ***
      paragraph 2
          ***
          ***"#;

#[test]
fn test_paragraph_checker() {
    // The reference test calls the checker `length_constraint:number_paragraphs`.
    let id = "length_constraints:number_paragraphs";
    let cases = [
        (PARAGRAPH_TEST_MESSAGE_1, 3, true),
        (PARAGRAPH_TEST_MESSAGE_2, 3, true),
        (PARAGRAPH_TEST_MESSAGE_3, 3, true),
        (PARAGRAPH_TEST_MESSAGE_4, 2, false),
    ];
    for (message, num_paragraphs, expected) in cases {
        let i = instruction(id, json!({ "num_paragraphs": num_paragraphs }));
        assert_eq!(
            i.check(message),
            expected,
            "test {message} and {num_paragraphs} paragraphs"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_content:postscript

const POSTSCRIPT_TEST_MESSAGE_1: &str = r#"
  I will do my best to follow your instructions and always start my responses
  with "My response is:". I will try to be as consistent as possible, but
  please be patient with me if I make a mistake. I am still under development,
  and I am always learning new things.

  P.S. I hope this is what you were looking for."#;

const POSTSCRIPT_TEST_MESSAGE_2: &str = r#"
  Sure, here is my response with a postscript starting with P.P.S.:

  My response is: I hope this answers your question.

  P.P.S. I am always happy to answer any other questions you may have.

  Do you have any other questions for me?"#;

// Postscript does not have to start as a new line.
const POSTSCRIPT_TEST_MESSAGE_3: &str = r#"
  The radius of a unit circle is 1. However, I can give you a funny and wrong
  answer: the radius of a unit circle is 0. This is because a unit circle is a
  circle with a radius of 1, and if the radius is 0, then the circle has no
  size and is just a point. (not starting a new line) P.S. I hope you enjoyed
  my joke!"#;

const POSTSCRIPT_TEST_MESSAGE_4: &str = r#"
  If the length of a square is one, the area of the square will also be one.
  p.p.s what if the entire response was lower case letters?
  "#;

const POSTSCRIPT_TEST_MESSAGE_5: &str = r#"
  The mysteries of space and time are mysterious.
  P. S. Sometimes there are even spaces between P. and S..
  "#;

#[test]
fn test_postscript_checker() {
    let id = "detectable_content:postscript";
    let cases = [
        (POSTSCRIPT_MARKER_PS, POSTSCRIPT_TEST_MESSAGE_1, true),
        ("PS:", POSTSCRIPT_TEST_MESSAGE_1, false),
        (POSTSCRIPT_MARKER_PPS, POSTSCRIPT_TEST_MESSAGE_2, true),
        ("P.S.", POSTSCRIPT_TEST_MESSAGE_3, true),
        ("P.P.S", POSTSCRIPT_TEST_MESSAGE_4, true),
        ("P.S.", POSTSCRIPT_TEST_MESSAGE_5, true),
    ];
    for (n, (marker, message, expected)) in cases.into_iter().enumerate() {
        let i = instruction(id, json!({ "postscript_marker": marker }));
        assert_eq!(i.check(message), expected, "subtest {n}: test {marker}");
    }
}

// ---------------------------------------------------------------------------------------------
// keywords:existence

const TEST_INCLUDE_KEYWORD_MESSAGE_1: &str = r#"
  Paris is a city of beauty and romance. The romantic river Seine winds its way
  through the city, past iconic landmarks like the Eiffel Tower and the Louvre
  Museum, where the Mona Lisa resides. Whether you're taking a boat cruise down
  the river or simply strolling along the banks, you're sure to be captivated
  by the city's charm."#;

const TEST_INCLUDE_KEYWORD_MESSAGE_2: &str = r#"
  Paris is a city of beauty, romance, and history. It is home to some of the
  most iconic landmarks in the world, including the Eiffel Tower, the Louvre
  Museum, and the Notre Dame Cathedral. The city is also known for its romantic
  river cruises, its delicious food, and its stylish people.
  "#;

const KEYWORDS: [&str; 3] = ["romantic", "river", "Mona Lisa"];

#[test]
fn test_keyword_checker() {
    // The reference test calls the checker `keywords:include_keywords`.
    let i = instruction("keywords:existence", json!({ "keywords": KEYWORDS }));
    assert!(
        i.check(TEST_INCLUDE_KEYWORD_MESSAGE_1),
        "test {TEST_INCLUDE_KEYWORD_MESSAGE_1}"
    );
    assert!(
        !i.check(TEST_INCLUDE_KEYWORD_MESSAGE_2),
        "test {TEST_INCLUDE_KEYWORD_MESSAGE_2}"
    );
}

// ---------------------------------------------------------------------------------------------
// keywords:frequency

const TEST_KEYWORD_FREQUNECY_MESSAGE_1: &str = r#"
  keyword, Keyword, KEYWORD
  "#;
const TEST_KEYWORD_FREQUENCY_KEYWORD_1: &str = "  keyword ";

const TEST_KEYWORD_FREQUNECY_MESSAGE_2: &str = r#"
    *keyword
    *Keyword
    *KEYWORD
  "#;
const TEST_KEYWORD_FREQUENCY_KEYWORD_2: &str = "KEYWORD";

#[test]
fn test_keyword_frequency_checker() {
    // The reference test calls the checker `keywords:keyword_frequency`.
    let id = "keywords:frequency";
    let cases = [
        (
            TEST_KEYWORD_FREQUENCY_KEYWORD_1,
            4,
            LESS_THAN,
            TEST_KEYWORD_FREQUNECY_MESSAGE_1,
            true,
        ),
        (
            TEST_KEYWORD_FREQUENCY_KEYWORD_1,
            3,
            AT_LEAST,
            TEST_KEYWORD_FREQUNECY_MESSAGE_1,
            true,
        ),
        (
            TEST_KEYWORD_FREQUENCY_KEYWORD_2,
            4,
            AT_LEAST,
            TEST_KEYWORD_FREQUNECY_MESSAGE_2,
            false,
        ),
    ];
    for (keyword, frequency, relation, message, expected) in cases {
        let i = instruction(
            id,
            json!({ "keyword": keyword, "frequency": frequency, "relation": relation }),
        );
        assert_eq!(
            i.check(message),
            expected,
            "test {keyword:?} {relation} {frequency}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// length_constraints:number_words

const TEST_NUM_WORDS_MESSAGE_1: &str = r#"
  d3sCRi7 lArge lAnguagE M0del w1tH 20 w0RdS."#;

const TEST_NUM_WORDS_MESSAGE_2: &str = r#"
  L4RGE L4NGU4GE M0DEL: AI syst3m th4t und3rstands, g3n3r4tes, or tr4nsforms
  l4ngu4g3 b4s3d on pr3vious l3arning & d4t4."#;

#[test]
fn test_num_words_checker() {
    // The reference test calls the checker `length_constraint:number_words`.
    let id = "length_constraints:number_words";
    let cases = [
        (TEST_NUM_WORDS_MESSAGE_1, 8, LESS_THAN, true),
        (TEST_NUM_WORDS_MESSAGE_2, 16, LESS_THAN, false),
        (TEST_NUM_WORDS_MESSAGE_2, 16, AT_LEAST, true),
    ];
    for (message, num_words, relation, expected) in cases {
        let i = instruction(id, json!({ "num_words": num_words, "relation": relation }));
        assert_eq!(
            i.check(message),
            expected,
            "test {message} {relation} {num_words}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// length_constraints:nth_paragraph_first_word

const PARAGRAPH_FIRST_WORD_TEST_1: &str = r#"
  paragraph 1

  I paragraph 2

  paragraph 3"#;

const PARAGRAPH_FIRST_WORD_TEST_2: &str = r#"
  paragraph 1

  I paragraph 2"#;

const PARAGRAPH_FIRST_WORD_TEST_3: &str = r#"
  paragraph 1

  fail paragraph 2

  paragraph 3"#;

const PARAGRAPH_FIRST_WORD_TEST_4: &str = r#"
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  Really more than three? No way!

  I can't believe it but I guess I am living proof.

  Haha, you go that right."#;

const PARAGRAPH_FIRST_WORD_TEST_5: &str = r#"
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  "Really?! more than three? No way!"

  I can't believe it but I guess I am living proof.

  Haha, you go that right."#;

const PARAGRAPH_FIRST_WORD_TEST_6: &str = r#"
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  Rea!lly more than three? No way!

  I can't believe it but I guess I am living proof.

  Haha, you go that right."#;

#[test]
fn test_paragraph_first_word() {
    let id = "length_constraints:nth_paragraph_first_word";
    // (test, num_paragraphs, nth_paragraph, first_word, expected)
    let cases = [
        (PARAGRAPH_FIRST_WORD_TEST_1, 3, 2, "I", true),
        (PARAGRAPH_FIRST_WORD_TEST_2, 3, 2, "I", false),
        (PARAGRAPH_FIRST_WORD_TEST_3, 3, 2, "I", false),
        (PARAGRAPH_FIRST_WORD_TEST_4, 5, 5, "haha", true),
        (PARAGRAPH_FIRST_WORD_TEST_5, 5, 3, "Really", true),
        (PARAGRAPH_FIRST_WORD_TEST_6, 5, 3, "Really", false),
    ];
    for (test, num_paragraphs, nth_paragraph, first_word, expected) in cases {
        let i = instruction(
            id,
            json!({
                "num_paragraphs": num_paragraphs,
                "nth_paragraph": nth_paragraph,
                "first_word": first_word,
            }),
        );
        assert_eq!(
            i.check(test),
            expected,
            "test {test} \n. Test for {num_paragraphs} paragraphs and for paragraph \
             {nth_paragraph} {first_word} is first word"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// keywords:forbidden_words

const TEST_FORBIDDEN_WORDS_MESSAGE_1: &str = r#"
  The Nazis came to power in 1933 through a combination of legal and illegal
  means. Hitler was appointed chancellor by President Paul von Hindenburg, and
  the Nazis quickly consolidated their power by passing a series of laws that
  restricted the rights of opposition parties and individuals. By 1934, Hitler
  had become dictator of Germany.
  "#;

const TEST_FORBIDDEN_WORDS_MESSAGE_2: &str = r#"
  Dinosaurs were a diverse group of reptiles that dominated the Earth for over
  160 million years. They came in all shapes and sizes, from the tiny
  Compsognathus to the massive Argentinosaurus. Dinosaurs were the most
  successful land animals on Earth until they went extinct about 66 million
  years ago. The exact cause of their extinction is still unknown, but it
  is thought to have been a combination of factors, including an asteroid
  impact and climate change.
  "#;

const TEST_FORBIDDEN_WORDS_MESSAGE_3: &str = r#"
  GPT, or Generative Pre-trained Transformer, is a family of neural network
  models that uses the transformer architecture. GPT models are trained on a
  massive dataset of text and code, and can be used for a variety of tasks,
  including text generation, translation, and question answering. GPT models
  have been shown to be very effective at these tasks, and are being used by
  a variety of companies and organizations like Google.
  "#;

const FORBIDDEN_WORDS_1: [&str; 3] = ["HOUSE", "POWER", "BECOME"];
const FORBIDDEN_WORDS_2: [&str; 2] = ["GOOGLE", "TEXT"];
const FORBIDDEN_WORDS_3: [&str; 2] = ["GENE", "TRANSFORM"];

#[test]
fn test_forbidden_words() {
    let id = "keywords:forbidden_words";
    let cases: [(&[&str], &str, bool); 7] = [
        (&FORBIDDEN_WORDS_1, TEST_FORBIDDEN_WORDS_MESSAGE_1, false),
        (&FORBIDDEN_WORDS_1, TEST_FORBIDDEN_WORDS_MESSAGE_2, true),
        (&FORBIDDEN_WORDS_1, TEST_FORBIDDEN_WORDS_MESSAGE_3, true),
        (&FORBIDDEN_WORDS_2, TEST_FORBIDDEN_WORDS_MESSAGE_1, true),
        (&FORBIDDEN_WORDS_2, TEST_FORBIDDEN_WORDS_MESSAGE_2, true),
        (&FORBIDDEN_WORDS_2, TEST_FORBIDDEN_WORDS_MESSAGE_3, false),
        // Whole words only: "Generative" and "transformer" hold GENE and TRANSFORM.
        (&FORBIDDEN_WORDS_3, TEST_FORBIDDEN_WORDS_MESSAGE_3, true),
    ];
    for (words, message, expected) in cases {
        let i = instruction(id, json!({ "forbidden_words": words }));
        assert_eq!(
            i.check(message),
            expected,
            "test {message}\n with forbidden words: {words:?}. "
        );
    }
}

// ---------------------------------------------------------------------------------------------
// combination:two_responses

const TEST_TWO_RESPONSES_1: &str = r#"
  This is response 1.
  ******
  This is response 2.
  "#;

const TEST_TWO_RESPONSES_2: &str = r#"
  This is response 1.
  ******
  This is response 1.
  "#;

const TEST_TWO_RESPONSES_3: &str = r#"
  This is response 1.
  ******
  This is response 2.
  ******
  This is response 3.
  "#;

const TEST_TWO_RESPONSES_4: &str = r#"
  ******
  Response 1.
  ******
  ******
  Response 2.
  ******
  "#;

const TEST_TWO_RESPONSES_5: &str = r#"
  ******
  Response 1
  ******
  Response 2
  ******
  "#;

#[test]
fn test_two_responses() {
    let i = instruction("combination:two_responses", json!({}));
    for (response, expected) in [
        (TEST_TWO_RESPONSES_1, true),
        (TEST_TWO_RESPONSES_2, false),
        (TEST_TWO_RESPONSES_3, false),
        (TEST_TWO_RESPONSES_4, false),
        (TEST_TWO_RESPONSES_5, true),
    ] {
        assert_eq!(i.check(response), expected, "test {response}");
    }
}

// ---------------------------------------------------------------------------------------------
// combination:repeat_prompt

const PROMPT_TO_REPEAT: &str = "Write a CL description.";

/// The prompt the reference names in its subtest messages.
const TEST_PROMPT_1: &str = "Write a CL description. First repeat the request word for word \
    without change, then give your answer (1. do not say any words or characters before \
    repeating the request; 2. the request you need to repeat does not include this sentence)";

const TEST_PROMPT_ANSWER_1: &str = r#"Write a CL description. Hi, Le and TJ, please
  check this out. Thanks.
  "#;
const TEST_PROMPT_ANSWER_2: &str = r#"Hi, Le and TJ. Write a CL description. Thanks.
  "#;

#[test]
fn test_prompt_repeat_answer() {
    let i = instruction(
        "combination:repeat_prompt",
        json!({ "prompt_to_repeat": PROMPT_TO_REPEAT }),
    );
    assert!(
        i.check(TEST_PROMPT_ANSWER_1),
        "test {TEST_PROMPT_ANSWER_1} with prompt: {TEST_PROMPT_1}"
    );
    assert!(
        !i.check(TEST_PROMPT_ANSWER_2),
        "test {TEST_PROMPT_ANSWER_2} with prompt: {TEST_PROMPT_1}"
    );
}

// ---------------------------------------------------------------------------------------------
// startend:end_checker

const TEST_END_CHECKER_1: &str = r#"
  The answer is 7. Any more questions?
  "#;

const TEST_END_CHECKER_2: &str = r#"
  At the end of this prompt I am required to say that this is the end.
  "#;

const TEST_END_CHECKER_3: &str = r#"
  This will fail. Paris is cool.
  "#;

const END_PHRASE_1: &str = r#"
  Any more questions?
  "#;

const END_PHRASE_2: &str = r#"
  This is the end.
  "#;

const END_PHRASE_3: &str = r#"
  This will fail.
  "#;

#[test]
fn test_end_checker() {
    let id = "startend:end_checker";
    for (end_phrase, response, expected) in [
        (END_PHRASE_1, TEST_END_CHECKER_1, true),
        (END_PHRASE_2, TEST_END_CHECKER_2, true),
        (END_PHRASE_3, TEST_END_CHECKER_3, false),
    ] {
        let i = instruction(id, json!({ "end_phrase": end_phrase }));
        assert_eq!(i.check(response), expected, "test {response}");
    }
}

// ---------------------------------------------------------------------------------------------
// detectable_format:title

const TEST_TITLE_MESSAGE_1: &str = r#"
  <<Song of Joy>>
  La la la. Happy song.
  "#;

const TEST_TITLE_MESSAGE_2: &str = r#"
  Is it fine for title to be at the end?
  <<This is the title>>
  "#;

const TEST_TITLE_MESSAGE_3: &str = r#"
  << >>
  There is no title.
  "#;

const TEST_TITLE_MESSAGE_4: &str = r#"
  <<This is not a title.
  This is a paragraph.>>
  "#;

#[test]
fn test_title_checker() {
    let i = instruction("detectable_format:title", json!({}));
    for (message, expected) in [
        (TEST_TITLE_MESSAGE_1, true),
        (TEST_TITLE_MESSAGE_2, true),
        (TEST_TITLE_MESSAGE_3, false),
        (TEST_TITLE_MESSAGE_4, false),
    ] {
        assert_eq!(i.check(message), expected, "test {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// keywords:letter_frequency

const TEST_LETTER_FREQUENCY_MESSAGE_1: &str = r#"
  There is the T. Four T's.
  "#;

const TEST_LETTER_FREQUENCY_MESSAGE_2: &str = r#"
  asdfghjkl!!aA
  "#;

// The reference also defines TEST_LETTER_FREQUENCY_MESSAGE_3 ("The letter P appears 3 times
// in this message.") but never checks it: its third subtest checks MESSAGE_2 again.

#[test]
fn test_letter_frequency_checker() {
    let id = "keywords:letter_frequency";
    for (letter, frequency, relation, message, expected) in [
        ("T", 4, AT_LEAST, TEST_LETTER_FREQUENCY_MESSAGE_1, true),
        ("a", 4, LESS_THAN, TEST_LETTER_FREQUENCY_MESSAGE_2, true),
        ("p", 4, AT_LEAST, TEST_LETTER_FREQUENCY_MESSAGE_2, false),
    ] {
        let i = instruction(
            id,
            json!({ "letter": letter, "let_frequency": frequency, "let_relation": relation }),
        );
        assert_eq!(
            i.check(message),
            expected,
            "test {message} ({letter} {relation} {frequency})"
        );
    }
}

#[test]
fn test_letter_frequency_checker_accepts_punctuation() {
    // The reference also asserts `'letter #' in description`; seft builds no descriptions.
    let i = instruction(
        "keywords:letter_frequency",
        json!({ "letter": "#", "let_frequency": 4, "let_relation": AT_LEAST }),
    );
    assert!(i.check("#one #two #three #four"));
    assert!(!i.check("#one #two #three"));
}

#[test]
fn test_letter_frequency_checker_rejects_invalid_explicit_args() {
    let id = "keywords:letter_frequency";
    // The reference raises "single non-whitespace character" and "let_frequency must be
    // non-negative"; seft's messages differ but name the instruction and the kwarg.
    assert_refused(
        id,
        json!({ "letter": "ab", "let_frequency": 1, "let_relation": AT_LEAST }),
        "letter",
    );
    assert_refused(
        id,
        json!({ "letter": "a", "let_frequency": -1, "let_relation": AT_LEAST }),
        "let_frequency",
    );
}

// ---------------------------------------------------------------------------------------------
// change_case:english_capital, change_case:english_lowercase

const TEST_ENGLISH_CAPITAL_1: &str = r#"
  THIS IS AN ENGLISH SENTENCE. EVERY LETTER IS CAPITALIZED!!! AMAZING.
  "#;

const TEST_ENGLISH_CAPITAL_2: &str = r#"
  Every Word Is Capitalized.
  "#;

#[test]
fn test_english_capital_checker() {
    let i = instruction("change_case:english_capital", json!({}));
    assert!(
        i.check(TEST_ENGLISH_CAPITAL_1),
        "test {TEST_ENGLISH_CAPITAL_1}"
    );
    assert!(
        !i.check(TEST_ENGLISH_CAPITAL_2),
        "test {TEST_ENGLISH_CAPITAL_2}"
    );
}

const TEST_ENGLISH_LOWERCASE_1: &str = r#"
  every letter is lowercase.
  "#;

const TEST_ENGLISH_LOWERCASE_2: &str = r#"
  Almost every letter is lowercase.
  "#;

#[test]
fn test_english_lowercase_checker() {
    let i = instruction("change_case:english_lowercase", json!({}));
    assert!(
        i.check(TEST_ENGLISH_LOWERCASE_1),
        "test {TEST_ENGLISH_LOWERCASE_1}"
    );
    assert!(
        !i.check(TEST_ENGLISH_LOWERCASE_2),
        "test {TEST_ENGLISH_LOWERCASE_2}"
    );
}

// ---------------------------------------------------------------------------------------------
// punctuation:no_comma

const TEST_COMMA_MESSAGE_1: &str = r#"
  Every sentence is short. There is no need for a comma.
  "#;

const TEST_COMMA_MESSAGE_2: &str = r#"
  Since the start of time, people have always found a way to punctuate.
  "#;

#[test]
fn test_comma() {
    let i = instruction("punctuation:no_comma", json!({}));
    assert!(i.check(TEST_COMMA_MESSAGE_1), "test {TEST_COMMA_MESSAGE_1}");
    assert!(
        !i.check(TEST_COMMA_MESSAGE_2),
        "test {TEST_COMMA_MESSAGE_2}"
    );
}

// ---------------------------------------------------------------------------------------------
// change_case:capital_word_frequency

const TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_1: &str = r#"
  HERE there are THREE FUlly CAPITAL words.
  "#;

const TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_2: &str = r#"
  THERE are Four FULLY CAPITAL WORDS. Many Others Are Only Partially So.
  "#;

#[test]
fn test_capital_word_frequency() {
    let id = "change_case:capital_word_frequency";
    for (frequency, relation, message, expected) in [
        (3, AT_LEAST, TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_1, true),
        (5, LESS_THAN, TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_2, true),
        (4, LESS_THAN, TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_2, false),
    ] {
        let i = instruction(
            id,
            json!({ "capital_frequency": frequency, "capital_relation": relation }),
        );
        assert_eq!(
            i.check(message),
            expected,
            "test {message} ({relation} {frequency})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// startend:quotation

const TEST_QUOTATION_MESSAGE_1: &str = r#"
  "This entire message is wrapped in double quotation marks."
  "#;

const TEST_QUOTATION_MESSAGE_2: &str = r#"
  "This message is wrapped in double quotation marks." But not everything.
  "#;

#[test]
fn test_quotation() {
    let i = instruction("startend:quotation", json!({}));
    assert!(
        i.check(TEST_QUOTATION_MESSAGE_1),
        "test {TEST_QUOTATION_MESSAGE_1}"
    );
    assert!(
        !i.check(TEST_QUOTATION_MESSAGE_2),
        "test {TEST_QUOTATION_MESSAGE_2}"
    );
}

// ---------------------------------------------------------------------------------------------
// instructions_util_test.py

#[test]
fn test_word_count() {
    let cases = [
        ("word1, word2, word3, word4.", 4),
        (
            "\n      Bard can you tell me which is the best optimization method for the\n      \
             transition from an hydro-thermal system to an hydro-renewables system",
            24,
        ),
        ("\n      Hyphenated-word has two word counts.\n      ", 6),
    ];
    for (text, expected_num_words) in cases {
        assert_eq!(count_words(text), expected_num_words, "{text}");
    }
}

#[test]
fn test_count_sentences() {
    let cases = [
        ("xx,x. xx,x! xx/x. x{x}x? x.", 5),
        ("xx,x! xxxx. x(x)x?", 3),
        ("xxxx. xx,x! xx|x. x&x x?", 4),
        ("xx-x]xx,x! x{x}xx,x.", 2),
    ];
    for (response, num_sentences) in cases {
        let name = format!("_response={response}_num_sentences={num_sentences}");
        assert_eq!(count_sentences(response), num_sentences, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// seft's own: detectable_format:json_format (no reference test)

#[test]
fn test_json_format() {
    let i = instruction("detectable_format:json_format", json!({}));
    let cases = [
        ("{\"a\": 1}", true),
        ("  [1, 2, {\"b\": null}]\n", true),
        // Markdown fences (```json, ```Json, ```JSON, ```) are stripped first.
        ("```json\n{\"a\": 1}\n```", true),
        ("```JSON\n{\"a\": [true, false]}\n```", true),
        ("```\n\"just a string\"\n```", true),
        // Python's json.loads accepts NaN and Infinity.
        ("{\"x\": NaN, \"y\": -Infinity}", true),
        ("{'a': 1}", false),
        ("{\"a\": 1,}", false),
        ("Here is the JSON: {\"a\": 1}", false),
        ("{\"a\": 1} trailing", false),
    ];
    for (response, expected) in cases {
        assert_eq!(i.check(response), expected, "{response:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// seft's own: kwargs the reference would replace by a random draw are refused

#[test]
fn bad_kwargs_unknown_instruction_id() {
    let message = refusal("keywords:key_sentences", json!({}));
    assert!(message.contains("keywords:key_sentences"), "{message}");
    let message = refusal(
        "detectable_format:exact_number_bullet_points",
        json!({ "num_bullets": 3 }),
    );
    assert!(
        message.contains("detectable_format:exact_number_bullet_points"),
        "{message}"
    );
}

#[test]
fn bad_kwargs_missing_kwarg() {
    assert_refused(
        "length_constraints:number_words",
        json!({ "relation": AT_LEAST }),
        "num_words",
    );
    assert_refused(
        "length_constraints:number_words",
        json!({ "num_words": 10 }),
        "relation",
    );
    assert_refused("keywords:existence", json!({}), "keywords");
    assert_refused(
        "detectable_content:postscript",
        json!({}),
        "postscript_marker",
    );
    assert_refused("combination:repeat_prompt", Value::Null, "prompt_to_repeat");
    assert_refused(
        "length_constraints:nth_paragraph_first_word",
        json!({ "num_paragraphs": 3, "nth_paragraph": 2 }),
        "first_word",
    );
}

#[test]
fn bad_kwargs_unknown_relation() {
    assert_refused(
        "length_constraints:number_sentences",
        json!({ "relation": "at most", "num_sentences": 3 }),
        "relation",
    );
    assert_refused(
        "keywords:letter_frequency",
        json!({ "letter": "a", "let_frequency": 3, "let_relation": "more than" }),
        "let_relation",
    );
    assert_refused(
        "change_case:capital_word_frequency",
        json!({ "capital_frequency": 3, "capital_relation": "Less Than" }),
        "capital_relation",
    );
}

#[test]
fn bad_kwargs_negative_or_non_integer_count() {
    let id = "length_constraints:number_paragraphs";
    for bad in [json!(-1), json!(2.5), json!("3"), json!(true), json!([3])] {
        assert_refused(id, json!({ "num_paragraphs": bad }), "num_paragraphs");
    }
    assert_refused(
        "keywords:frequency",
        json!({ "keyword": "k", "frequency": -2, "relation": AT_LEAST }),
        "frequency",
    );
    // An integral float is a count: the hub's copy stores the counts of some rows as floats.
    assert!(instruction(id, json!({ "num_paragraphs": 3.0 })).check("a\n***\nb\n***\nc"));
}

#[test]
fn bad_kwargs_unexpected_kwarg() {
    assert_refused(
        "length_constraints:number_words",
        json!({ "num_words": 10, "relation": AT_LEAST, "num_sentences": 3 }),
        "num_sentences",
    );
    assert_refused("punctuation:no_comma", json!({ "comma": 0 }), "comma");
}

#[test]
fn bad_kwargs_null_values_are_ignored() {
    // The hub's copy of IFEval gives every row every kwarg of every type, null where unused.
    let mut all_null = serde_json::Map::new();
    for key in [
        "num_highlights",
        "relation",
        "num_words",
        "num_placeholders",
        "prompt_to_repeat",
        "num_paragraphs",
        "postscript_marker",
        "first_word",
        "nth_paragraph",
        "keywords",
        "forbidden_words",
        "keyword",
        "frequency",
        "num_sentences",
        "end_phrase",
        "num_bullets",
        "section_spliter",
        "num_sections",
        "capital_relation",
        "capital_frequency",
        "letter",
        "let_frequency",
        "let_relation",
        "language",
    ] {
        all_null.insert(key.to_string(), Value::Null);
    }
    let with = |pairs: &[(&str, Value)]| {
        let mut m = all_null.clone();
        for (k, v) in pairs {
            m.insert((*k).to_string(), v.clone());
        }
        Value::Object(m)
    };
    let i = instruction("punctuation:no_comma", with(&[]));
    assert!(i.check("no commas here") && !i.check("a, b"));
    let i = instruction(
        "detectable_format:number_highlighted_sections",
        with(&[("num_highlights", json!(2))]),
    );
    assert!(i.check("*one* and *two*") && !i.check("*one* only"));
    let i = instruction(
        "length_constraints:number_words",
        with(&[("num_words", json!(3)), ("relation", json!(LESS_THAN))]),
    );
    assert!(i.check("two words") && !i.check("three words here"));
    // A kwarg the instruction needs is still missing when it is null.
    assert_refused(
        "detectable_format:number_highlighted_sections",
        with(&[]),
        "num_highlights",
    );
}

#[test]
fn every_registry_id_parses() {
    let kwargs = |id: &str| match id {
        "keywords:existence" => json!({ "keywords": ["a"] }),
        "keywords:frequency" => json!({ "keyword": "a", "frequency": 1, "relation": AT_LEAST }),
        "keywords:forbidden_words" => json!({ "forbidden_words": ["a"] }),
        "keywords:letter_frequency" => {
            json!({ "letter": "a", "let_frequency": 1, "let_relation": AT_LEAST })
        }
        "language:response_language" => json!({ "language": "en" }),
        "length_constraints:number_sentences" => {
            json!({ "num_sentences": 1, "relation": AT_LEAST })
        }
        "length_constraints:number_paragraphs" => json!({ "num_paragraphs": 1 }),
        "length_constraints:number_words" => json!({ "num_words": 1, "relation": AT_LEAST }),
        "length_constraints:nth_paragraph_first_word" => {
            json!({ "num_paragraphs": 2, "nth_paragraph": 1, "first_word": "a" })
        }
        "detectable_content:number_placeholders" => json!({ "num_placeholders": 1 }),
        "detectable_content:postscript" => json!({ "postscript_marker": "P.S." }),
        "detectable_format:number_bullet_lists" => json!({ "num_bullets": 1 }),
        "detectable_format:number_highlighted_sections" => json!({ "num_highlights": 1 }),
        "detectable_format:multiple_sections" => {
            json!({ "section_spliter": "Section", "num_sections": 1 })
        }
        "combination:repeat_prompt" => json!({ "prompt_to_repeat": "a" }),
        "startend:end_checker" => json!({ "end_phrase": "a" }),
        "change_case:capital_word_frequency" => {
            json!({ "capital_frequency": 1, "capital_relation": AT_LEAST })
        }
        _ => json!({}),
    };
    assert_eq!(INSTRUCTION_IDS.len(), 25);
    for id in INSTRUCTION_IDS {
        instruction(id, kwargs(id));
    }
}

// ---------------------------------------------------------------------------------------------
// seft's own: strict and loose verdicts (evaluation_lib.test_instruction_following_*)

#[test]
fn judge_strict_and_loose() {
    let prompt = IfevalPrompt {
        key: 1,
        prompt: "Answer without commas, in at most 5 words.".to_string(),
        instruction_ids: vec![
            "punctuation:no_comma".to_string(),
            "length_constraints:number_words".to_string(),
        ],
        instructions: vec![
            instruction("punctuation:no_comma", json!({})),
            instruction(
                "length_constraints:number_words",
                json!({ "num_words": 6, "relation": LESS_THAN }),
            ),
        ],
    };
    // Both followed as it is.
    let v = judge(&prompt, "yes it is");
    assert_eq!(v.follow_instruction_list_strict, [true, true]);
    assert_eq!(v.follow_instruction_list_loose, [true, true]);
    assert!(v.follow_all_instructions_strict && v.follow_all_instructions_loose);

    // A greeting line with a comma breaks both strictly; without its first line the response
    // follows both, so loosely it does.
    let v = judge(&prompt, "Sure, here is my answer:\nyes it is");
    assert_eq!(v.follow_instruction_list_strict, [false, false]);
    assert_eq!(v.follow_instruction_list_loose, [true, true]);
    assert!(!v.follow_all_instructions_strict && v.follow_all_instructions_loose);

    // An empty (or all-whitespace) response follows nothing, strict or loose.
    let v = judge(&prompt, " \n ");
    assert_eq!(v.follow_instruction_list_strict, [false, false]);
    assert_eq!(v.follow_instruction_list_loose, [false, false]);
}
