//! One JSON row → one [`Record`], whatever the format it is written in.

use serde_json::{Map, Value};

use crate::model::Message;

/// A preference pair: a prompt conversation and two alternative assistant continuations.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    pub prompt: Vec<Message>,
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
    /// Ratings when the data has them (UltraFeedback/Nectar style `score_chosen`/`score_rejected`).
    pub score_chosen: Option<f64>,
    pub score_rejected: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A conversation to imitate: the loss goes on its assistant turns.
    Conversation(Vec<Message>),
    Preference(Preference),
}

impl Record {
    /// The conversation to train on with SFT (for a preference pair: prompt + chosen).
    pub fn sft_messages(&self) -> Vec<Message> {
        match self {
            Record::Conversation(m) => m.clone(),
            Record::Preference(p) => p.prompt.iter().chain(&p.chosen).cloned().collect(),
        }
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "field '{key}' must be a string, got {}",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// ShareGPT speaker names and the usual role names, as chat templates expect them.
fn normalize_role(role: &str) -> Result<&'static str, String> {
    Ok(match role {
        "user" | "human" | "Human" | "USER" => "user",
        "assistant" | "gpt" | "bot" | "model" | "Assistant" | "ASSISTANT" | "chatgpt" => {
            "assistant"
        }
        "system" | "System" | "SYSTEM" => "system",
        "tool" | "function" | "observation" | "ipython" => "tool",
        other => {
            return Err(format!(
                "unknown role '{other}' (expected user, assistant, system or tool)"
            ));
        }
    })
}

/// One message object: `{role, content}` or ShareGPT's `{from, value}`.
fn parse_message(v: &Value, where_: &str) -> Result<Message, String> {
    let obj = v.as_object().ok_or_else(|| {
        format!(
            "{where_} must be an object with role/content, got {}",
            kind(v)
        )
    })?;
    let role = str_field(obj, "role")?
        .or(str_field(obj, "from")?)
        .ok_or_else(|| format!("{where_} has no 'role' (or 'from')"))?;
    let content = str_field(obj, "content")?
        .or(str_field(obj, "value")?)
        .ok_or_else(|| format!("{where_} has no 'content' (or 'value') string"))?;
    Ok(Message::new(
        normalize_role(role).map_err(|e| format!("{where_}: {e}"))?,
        content,
    ))
}

fn parse_messages(v: &Value, field: &str) -> Result<Vec<Message>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, m)| parse_message(m, &format!("{field}[{i}]")))
            .collect(),
        Value::Object(_) => Ok(vec![parse_message(v, field)?]),
        other => Err(format!(
            "field '{field}' must be a list of messages, got {}",
            kind(other)
        )),
    }
}

/// A chosen/rejected side: a plain string (the assistant reply), a message, or a message list.
fn parse_side(v: &Value, field: &str) -> Result<Vec<Message>, String> {
    match v {
        Value::String(s) => Ok(vec![Message::new("assistant", s)]),
        _ => parse_messages(v, field),
    }
}

/// Splits an Anthropic HH transcript ("\n\nHuman: …\n\nAssistant: …") into messages.
pub fn parse_hh_dialogue(text: &str) -> Result<Vec<Message>, String> {
    let mut messages: Vec<Message> = Vec::new();
    let mut rest = text;
    const HUMAN: &str = "\n\nHuman:";
    const ASSISTANT: &str = "\n\nAssistant:";
    loop {
        let next_h = rest.find(HUMAN);
        let next_a = rest.find(ASSISTANT);
        let (pos, role, marker) = match (next_h, next_a) {
            (Some(h), Some(a)) if h < a => (h, "user", HUMAN),
            (Some(h), None) => (h, "user", HUMAN),
            (_, Some(a)) => (a, "assistant", ASSISTANT),
            (None, None) => break,
        };
        if let Some(last) = messages.last_mut() {
            last.content = rest[..pos].trim().to_string();
        } else if !rest[..pos].trim().is_empty() {
            return Err("HH text must start with \"\\n\\nHuman:\"".into());
        }
        messages.push(Message::new(role, ""));
        rest = &rest[pos + marker.len()..];
    }
    match messages.last_mut() {
        Some(last) => last.content = rest.trim().to_string(),
        None => return Err("no \"\\n\\nHuman:\" / \"\\n\\nAssistant:\" turns in the text".into()),
    }
    Ok(messages)
}

/// HH preference rows are two full transcripts sharing a prefix.
fn hh_preference(chosen: &str, rejected: &str) -> Result<Preference, String> {
    let c = parse_hh_dialogue(chosen).map_err(|e| format!("chosen: {e}"))?;
    let r = parse_hh_dialogue(rejected).map_err(|e| format!("rejected: {e}"))?;
    let split = |m: Vec<Message>, side: &str| -> Result<(Vec<Message>, Message), String> {
        let mut m = m;
        match m.pop() {
            Some(last) if last.role == "assistant" => Ok((m, last)),
            _ => Err(format!(
                "{side}: the transcript does not end with an Assistant turn"
            )),
        }
    };
    let (prompt, chosen_last) = split(c, "chosen")?;
    let (prompt_r, rejected_last) = split(r, "rejected")?;
    if prompt != prompt_r {
        return Err(
            "chosen and rejected transcripts differ before their last Assistant turn".into(),
        );
    }
    Ok(Preference {
        prompt,
        chosen: vec![chosen_last],
        rejected: vec![rejected_last],
        score_chosen: None,
        score_rejected: None,
    })
}

fn check_conversation(messages: Vec<Message>) -> Result<Vec<Message>, String> {
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("the conversation has no assistant turn to learn from".into());
    }
    if messages
        .iter()
        .any(|m| m.role == "assistant" && m.content.trim().is_empty())
    {
        return Err("an assistant turn is empty".into());
    }
    Ok(messages)
}

/// A preference row: `prompt` (or LLaMA-Factory's `conversations`/`messages`) with `chosen`
/// and `rejected` sides, or Anthropic HH's two full transcripts.
fn parse_preference(obj: &serde_json::Map<String, Value>) -> Result<Record, String> {
    let chosen = obj
        .get("chosen")
        .ok_or("preference row has 'rejected' but no 'chosen'")?;
    let rejected = obj
        .get("rejected")
        .ok_or("preference row has 'chosen' but no 'rejected'")?;
    let prompt_value = obj
        .get("prompt")
        .or_else(|| obj.get("conversations"))
        .or_else(|| obj.get("messages"));
    let mut pref = match (prompt_value, chosen, rejected) {
        (None, Value::String(c), Value::String(r)) => hh_preference(c, r)?,
        (None, _, _) => {
            return Err("preference row has no 'prompt' (or 'conversations')".into());
        }
        (Some(p), c, r) => {
            let prompt = match p {
                Value::String(s) => vec![Message::new("user", s)],
                other => parse_messages(other, "prompt")?,
            };
            Preference {
                prompt,
                chosen: parse_side(c, "chosen")?,
                rejected: parse_side(r, "rejected")?,
                score_chosen: None,
                score_rejected: None,
            }
        }
    };
    for (side, msgs) in [("chosen", &pref.chosen), ("rejected", &pref.rejected)] {
        if msgs.iter().all(|m| m.content.trim().is_empty()) {
            return Err(format!("'{side}' response is empty"));
        }
    }
    pref.score_chosen = obj.get("score_chosen").and_then(Value::as_f64);
    pref.score_rejected = obj.get("score_rejected").and_then(Value::as_f64);
    Ok(Record::Preference(pref))
}

/// An Alpaca row: `instruction` (+ `input`) → `output`, with optional `system` and
/// LLaMA-Factory's `history` of earlier [query, response] pairs.
fn parse_alpaca(obj: &serde_json::Map<String, Value>) -> Result<Record, String> {
    let instruction = str_field(obj, "instruction")?.ok_or("Alpaca row has no 'instruction'")?;
    let output = str_field(obj, "output")?.ok_or("Alpaca row has no 'output'")?;
    let input = str_field(obj, "input")?.unwrap_or("");
    let mut messages = Vec::new();
    if let Some(system) = str_field(obj, "system")?.filter(|s| !s.is_empty()) {
        messages.push(Message::new("system", system));
    }
    // LLaMA-Factory's `history`: earlier [query, response] pairs.
    if let Some(history) = obj.get("history").filter(|h| !h.is_null()) {
        let turns = history
            .as_array()
            .ok_or("field 'history' must be a list of [query, response] pairs")?;
        for (i, turn) in turns.iter().enumerate() {
            match turn.as_array().map(|t| t.as_slice()) {
                Some([Value::String(q), Value::String(a)]) => {
                    messages.push(Message::new("user", q));
                    messages.push(Message::new("assistant", a));
                }
                _ => {
                    return Err(format!(
                        "history[{i}] must be a [query, response] pair of strings"
                    ));
                }
            }
        }
    }
    let user = if input.is_empty() {
        instruction.to_string()
    } else {
        format!("{instruction}\n{input}")
    };
    messages.push(Message::new("user", &user));
    messages.push(Message::new("assistant", output));
    check_conversation(messages).map(Record::Conversation)
}

/// Parses one row in any supported format.
pub fn parse_row(v: &Value) -> Result<Record, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a row must be a JSON object, got {}", kind(v)))?;
    // Preference pairs first: they may also carry a `conversations` prompt (LLaMA-Factory).
    if obj.contains_key("chosen") || obj.contains_key("rejected") {
        return parse_preference(obj);
    }
    if let Some(list) = obj.get("messages").or_else(|| obj.get("conversations")) {
        let field = if obj.contains_key("messages") {
            "messages"
        } else {
            "conversations"
        };
        let mut messages = parse_messages(list, field)?;
        if let Some(system) = str_field(obj, "system")?
            && messages.first().is_none_or(|m| m.role != "system")
        {
            messages.insert(0, Message::new("system", system));
        }
        return check_conversation(messages).map(Record::Conversation);
    }
    if obj.contains_key("instruction") || obj.contains_key("output") {
        return parse_alpaca(obj);
    }
    if obj.contains_key("prompt") || obj.contains_key("completion") {
        let completion = obj
            .get("completion")
            .ok_or("row has 'prompt' but no 'completion'")?;
        let prompt = obj
            .get("prompt")
            .ok_or("row has 'completion' but no 'prompt'")?;
        let mut messages = match prompt {
            Value::String(s) => vec![Message::new("user", s)],
            other => parse_messages(other, "prompt")?,
        };
        messages.extend(parse_side(completion, "completion")?);
        return check_conversation(messages).map(Record::Conversation);
    }
    if let Some(text) = str_field(obj, "text")?
        && text.contains("\n\nHuman:")
    {
        return check_conversation(parse_hh_dialogue(text)?).map(Record::Conversation);
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    Err(format!(
        "unrecognized row with fields {keys:?}; expected instruction/output, messages, conversations, prompt/completion, prompt/chosen/rejected, or HH text"
    ))
}

/// The prompt of one row, for unannotated prompt pools: `prompt`, Alpaca `instruction` (+
/// `input`), `question`, MT-Bench `turns[0]`, or the first user turn of `messages` /
/// `conversations`. Whatever answers the row carries are ignored.
pub fn parse_prompt(v: &Value) -> Result<String, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a row must be a JSON object, got {}", kind(v)))?;
    let text = if let Some(p) = obj.get("prompt").filter(|p| !p.is_string()) {
        let messages = parse_messages(p, "prompt")?;
        messages
            .into_iter()
            .find(|m| m.role == "user")
            .map(|m| m.content)
            .ok_or("field 'prompt' has no user turn")?
    } else if let Some(p) = str_field(obj, "prompt")? {
        p.to_string()
    } else if let Some(instruction) = str_field(obj, "instruction")? {
        match str_field(obj, "input")?.filter(|i| !i.trim().is_empty()) {
            Some(input) => format!("{instruction}\n{input}"),
            None => instruction.to_string(),
        }
    } else if let Some(q) = str_field(obj, "question")? {
        q.to_string()
    } else if let Some(turns) = obj.get("turns") {
        turns
            .as_array()
            .and_then(|t| t.first())
            .and_then(Value::as_str)
            .ok_or("field 'turns' must be a list of strings")?
            .to_string()
    } else if let Some(list) = obj.get("messages").or_else(|| obj.get("conversations")) {
        parse_messages(list, "messages")?
            .into_iter()
            .find(|m| m.role == "user")
            .map(|m| m.content)
            .ok_or("the conversation has no user turn")?
    } else {
        return Err(
            "no prompt field (expected prompt, instruction, question, turns, messages or conversations)"
                .into(),
        );
    };
    if text.trim().is_empty() {
        return Err("the prompt is empty".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(v: Value) -> Vec<Message> {
        match parse_row(&v).unwrap() {
            Record::Conversation(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alpaca_with_input_and_history() {
        let m = conv(
            json!({"instruction": "Sum", "input": "1 2", "output": "3", "history": [["hi", "hello"]]}),
        );
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        assert_eq!(m[2].content, "Sum\n1 2");
    }

    #[test]
    fn sharegpt_and_messages() {
        let a = conv(
            json!({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
        );
        let b = conv(
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn hh_transcripts_split_into_turns_and_preferences() {
        let m = parse_hh_dialogue(
            "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant: Bye.",
        )
        .unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1], Message::new("assistant", "Hello!"));
        let row = json!({"chosen": "\n\nHuman: Q?\n\nAssistant: Good", "rejected": "\n\nHuman: Q?\n\nAssistant: Bad"});
        match parse_row(&row).unwrap() {
            Record::Preference(p) => {
                assert_eq!(p.prompt, vec![Message::new("user", "Q?")]);
                assert_eq!(p.chosen[0].content, "Good");
                assert_eq!(p.rejected[0].content, "Bad");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn llamafactory_preference_with_sharegpt_objects() {
        let row = json!({"conversations": [{"from": "human", "value": "Q"}],
            "chosen": {"from": "gpt", "value": "A"}, "rejected": {"from": "gpt", "value": "B"}});
        match parse_row(&row).unwrap() {
            Record::Preference(p) => assert_eq!(
                (p.chosen[0].content.as_str(), p.rejected[0].content.as_str()),
                ("A", "B")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_rows_say_why() {
        let err = |v: Value| parse_row(&v).unwrap_err();
        assert!(err(json!({"instructions": "x", "outputs": "y"})).contains("unrecognized row"));
        assert!(err(json!({"instruction": "x", "output": ""})).contains("empty"));
        assert!(
            err(json!({"messages": [{"role": "user", "content": "only a question"}]}))
                .contains("no assistant turn")
        );
        assert!(err(json!({"prompt": "p", "chosen": "c"})).contains("no 'rejected'"));
        assert!(
            err(json!({"messages": [{"role": "wizard", "content": "x"}]}))
                .contains("unknown role 'wizard'")
        );
        assert!(err(json!({"instruction": 3, "output": "y"})).contains("must be a string"));
    }

    #[test]
    fn prompts_come_from_any_row_format() {
        let p = |v: serde_json::Value| parse_prompt(&v);
        assert_eq!(p(json!({"prompt": "a"})).unwrap(), "a");
        assert_eq!(
            p(json!({"instruction": "a", "input": "b", "output": "c"})).unwrap(),
            "a\nb"
        );
        assert_eq!(p(json!({"question": "q"})).unwrap(), "q");
        assert_eq!(p(json!({"turns": ["t1", "t2"]})).unwrap(), "t1");
        let m = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]});
        assert_eq!(p(m).unwrap(), "u");
        assert!(p(json!({"prompt": " "})).unwrap_err().contains("empty"));
        assert!(
            p(json!({"text": "x"}))
                .unwrap_err()
                .contains("no prompt field")
        );
    }
}
