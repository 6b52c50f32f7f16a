//! An OpenAI-compatible chat model for agent runs, used instead of the
//! offline model when the sandbox is started with `--llm-url`
//! (`QUIRE_SANDBOX_LLM_URL`, with `--llm-api-key` and `--llm-model`).
//!
//! One call is `POST {llm_url}/chat/completions` with `stream: true` (and
//! `stream_options.include_usage`), the messages, and the run's custom tools
//! as `function` tools. The answer streams back as SSE chunks: text arrives
//! in `choices[0].delta.content` (handed to `on_delta` as it comes), tool
//! calls in `choices[0].delta.tool_calls[]` pieces keyed by `index`, the
//! token counts in a final `usage`. A server that answers with a plain JSON
//! completion instead is understood too.
//!
//! Errors keep what the server said: the status and raw body of a refusal,
//! the undecodable line of a broken stream. A redirect is an error too (the
//! client follows none: the request carries the API key), naming where it
//! pointed.

use futures_util::StreamExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::config::AgentsConfig;
use super::events::Usage;

/// The configured model endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Llm {
    base: Url,
    key: Option<SecretString>,
    model: String,
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LlmToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The arguments as the model wrote them (JSON text).
    pub(crate) arguments: String,
}

/// One finished model call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Completion {
    pub(crate) content: String,
    pub(crate) tool_calls: Vec<LlmToolCall>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) usage: Option<Usage>,
}

/// A model call that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LlmError {
    #[error("could not reach the model at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the model answered {status}: {body}")]
    Refused { status: u16, body: String },
    /// A 3xx: the sandbox follows no redirect of the model's (the request
    /// carries the API key).
    #[error(
        "the model answered {status}, a redirect to {location:?}, which the sandbox does not \
         follow: set QUIRE_SANDBOX_LLM_URL (--llm-url) to the endpoint itself"
    )]
    Redirected { status: u16, location: String },
    #[error("the model's answer could not be read ({reason}): {raw}")]
    Protocol { reason: String, raw: String },
}

impl Llm {
    /// The configured model, if `--llm-url` is set.
    pub(crate) fn from_config(config: &AgentsConfig) -> Option<Llm> {
        config.llm_url.as_ref().map(|base| Llm {
            base: base.clone(),
            key: config.llm_api_key.clone(),
            model: config.llm_model.clone(),
        })
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.base.as_str().trim_end_matches('/')
        )
    }

    /// Calls the model once. `tools` are OpenAI `function` tool objects
    /// (none: the model must answer in text).
    pub(crate) async fn complete(
        &self,
        client: &reqwest::Client,
        messages: &[Value],
        tools: &[Value],
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, LlmError> {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !tools.is_empty() {
            body["tools"] = json!(tools);
        }
        let url = self.endpoint();
        let mut request = client.post(&url).json(&body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose_secret());
        }
        let transport = |e: reqwest::Error| LlmError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(LlmError::Redirected {
                status: status.as_u16(),
                location,
            });
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(LlmError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            let raw = response.text().await.map_err(transport)?;
            return whole_completion(&raw, on_delta);
        }

        let mut acc = Accumulator::default();
        let mut buffer: Vec<u8> = Vec::new();
        let mut bytes = response.bytes_stream();
        while let Some(piece) = bytes.next().await {
            buffer.extend_from_slice(&piece.map_err(transport)?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if acc.line(line.trim_end_matches(['\r', '\n']), on_delta)? {
                    return Ok(acc.finish());
                }
            }
        }
        let rest = String::from_utf8_lossy(&buffer).into_owned();
        acc.line(rest.trim(), on_delta)?;
        Ok(acc.finish())
    }
}

/// Builds a completion from the stream's `data:` lines.
#[derive(Default)]
struct Accumulator {
    completion: Completion,
    /// Tool calls by their `index`.
    calls: Vec<(u64, LlmToolCall)>,
}

impl Accumulator {
    /// Takes one line of the stream; true at `data: [DONE]`.
    fn line(
        &mut self,
        line: &str,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<bool, LlmError> {
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(false);
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| LlmError::Protocol {
            reason: e.to_string(),
            raw: data.to_owned(),
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(LlmError::Refused {
                status: 200,
                body: error.to_string(),
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.completion.usage = Some(usage_of(usage));
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(false);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.completion.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(false);
        };
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.completion.content.push_str(text);
            on_delta(text);
        }
        for piece in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = piece.get("index").and_then(Value::as_u64).unwrap_or(0);
            let position = match self.calls.iter().position(|(i, _)| *i == index) {
                Some(p) => p,
                None => {
                    let empty = LlmToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    };
                    self.calls.push((index, empty));
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[position].1;
            if let Some(id) = piece.get("id").and_then(Value::as_str) {
                call.id = id.to_owned();
            }
            if let Some(function) = piece.get("function") {
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    call.name.push_str(name);
                }
                if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                    call.arguments.push_str(arguments);
                }
            }
        }
        Ok(false)
    }

    fn finish(mut self) -> Completion {
        self.calls.sort_by_key(|(i, _)| *i);
        self.completion.tool_calls = self.calls.into_iter().map(|(_, c)| c).collect();
        self.completion
    }
}

/// A non-streamed completion (`choices[0].message`).
fn whole_completion(
    raw: &str,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<Completion, LlmError> {
    let protocol = |reason: &str| LlmError::Protocol {
        reason: reason.to_owned(),
        raw: raw.to_owned(),
    };
    let value: Value = serde_json::from_str(raw).map_err(|e| protocol(&e.to_string()))?;
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| protocol("no choices"))?;
    let message = choice
        .get("message")
        .ok_or_else(|| protocol("no message"))?;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !content.is_empty() {
        on_delta(&content);
    }
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| LlmToolCall {
            id: c
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: c["function"]
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: c["function"]
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    Ok(Completion {
        content,
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: value.get("usage").filter(|u| u.is_object()).map(usage_of),
    })
}

fn usage_of(usage: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let prompt = n(usage.get("prompt_tokens"));
    let completion = n(usage.get("completion_tokens"));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        reasoning_tokens: n(usage.pointer("/completion_tokens_details/reasoning_tokens")),
        cached_tokens: n(usage.pointer("/prompt_tokens_details/cached_tokens")),
        total_tokens: usage
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(prompt + completion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Result<(Completion, String), LlmError> {
        let mut acc = Accumulator::default();
        let mut seen = String::new();
        let mut on_delta = |d: &str| seen.push_str(d);
        for line in lines {
            if acc.line(line, &mut on_delta)? {
                break;
            }
        }
        Ok((acc.finish(), seen))
    }

    #[test]
    fn streamed_text_tool_calls_and_usage_are_assembled() {
        let (completion, seen) = feed(&[
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#,
            "",
            r#"data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"qu"}}]}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ery\":\"x\"}"}}]}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}}"#,
            "data: [DONE]",
            r#"data: {"choices":[{"delta":{"content":"ignored"}}]}"#,
        ])
        .unwrap();
        assert_eq!(seen, "Hello");
        assert_eq!(completion.content, "Hello");
        assert_eq!(
            completion.tool_calls,
            vec![LlmToolCall {
                id: "call_1".into(),
                name: "search".into(),
                arguments: r#"{"query":"x"}"#.into()
            }]
        );
        assert_eq!(completion.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(completion.usage.unwrap().total_tokens, 14);
    }

    #[test]
    fn a_broken_line_keeps_the_raw_text() {
        let err = feed(&["data: {not json"]).unwrap_err();
        assert!(
            matches!(err, LlmError::Protocol { ref raw, .. } if raw == "{not json"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_json_completion_is_understood() {
        let mut seen = String::new();
        let raw = r#"{"choices":[{"message":{"role":"assistant","content":"Hi [1]."},"finish_reason":"stop"}],
                      "usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let completion = whole_completion(raw, &mut |d: &str| seen.push_str(d)).unwrap();
        assert_eq!(seen, "Hi [1].");
        assert_eq!(completion.usage.unwrap().total_tokens, 5);
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    }
}
