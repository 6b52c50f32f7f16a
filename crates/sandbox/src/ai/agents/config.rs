//! Settings of agent runs: the model's pace, SSE keepalives, custom-tool
//! endpoints on loopback, and the optional OpenAI-compatible model.
//! Flattened into [`crate::Config`].

use std::time::Duration;

use secrecy::SecretString;

/// Default pause between two streamed answer pieces, in milliseconds — about
/// the pace of a hosted model.
pub(crate) const DEFAULT_TOKEN_DELAY_MS: u64 = 30;
/// Default silence after which a run stream sends `: keepalive`, as the
/// platform (30 s).
pub(crate) const DEFAULT_KEEPALIVE_MS: u64 = 30_000;
/// `model` of an agent created without one (the platform's `AGENT_DEFAULT_MODEL`).
pub(crate) const DEFAULT_AGENT_MODEL: &str = "gpt-4o-mini";

/// How agents run in the sandbox.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentsConfig {
    /// Let custom HTTP tools call loopback endpoints (`localhost`,
    /// 127.0.0.0/8, `::1`), for tests and a local stack whose tool server
    /// runs on this machine. The real platform refuses them (as it refuses
    /// private and link-local addresses): there, a tool endpoint must be
    /// publicly reachable.
    /// (The variable takes `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.)
    #[arg(
        long,
        env = "QUIRE_SANDBOX_ALLOW_LOOPBACK_TOOL_ENDPOINTS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_loopback_tool_endpoints: bool,

    /// Emulate platform 0.7: management routes (`@require_service_role`,
    /// e.g. `GET /api/knowledge-bases`) accept a user's token as well as the
    /// service key. Only for testing that the companion refuses such a
    /// platform; 0.12 and later answer a user token with 403.
    /// (The variable takes `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.)
    #[arg(
        long,
        env = "QUIRE_SANDBOX_EMULATE_0_7_MANAGEMENT_AUTH",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide = true
    )]
    pub emulate_0_7_management_auth: bool,

    /// Simulate a project whose agent model has neither a platform key nor a
    /// BYOK key: every run and run/stream answers 400 before it streams,
    /// with the platform's HTML error page ("Model … requires BYOK. …"),
    /// as `check_model_available` does.
    /// (The variable takes `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.)
    #[arg(
        long,
        env = "QUIRE_SANDBOX_MODEL_WITHOUT_KEY",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub model_without_key: bool,

    /// Pause between two streamed pieces of an answer (`content_delta`), in
    /// milliseconds. 0 streams as fast as possible.
    #[arg(long = "agent-token-delay-ms", env = "QUIRE_SANDBOX_AGENT_TOKEN_DELAY_MS", default_value_t = DEFAULT_TOKEN_DELAY_MS)]
    pub token_delay_ms: u64,

    /// Silence, in milliseconds, after which a run stream sends a
    /// `: keepalive` comment.
    #[arg(long = "sse-keepalive-ms", env = "QUIRE_SANDBOX_SSE_KEEPALIVE_MS", default_value_t = DEFAULT_KEEPALIVE_MS)]
    pub keepalive_ms: u64,

    /// Base URL of an OpenAI-compatible chat API (e.g.
    /// `https://api.openai.com/v1`). When set, agents answer with that model
    /// instead of the offline extractive one.
    #[arg(long = "llm-url", env = "QUIRE_SANDBOX_LLM_URL")]
    pub llm_url: Option<url::Url>,

    /// API key for `--llm-url`.
    #[arg(long = "llm-api-key", env = "QUIRE_SANDBOX_LLM_API_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub llm_api_key: Option<SecretString>,

    /// Model name sent to `--llm-url`.
    #[arg(long = "llm-model", env = "QUIRE_SANDBOX_LLM_MODEL", default_value = DEFAULT_AGENT_MODEL)]
    pub llm_model: String,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            allow_loopback_tool_endpoints: false,
            emulate_0_7_management_auth: false,
            model_without_key: false,
            token_delay_ms: DEFAULT_TOKEN_DELAY_MS,
            keepalive_ms: DEFAULT_KEEPALIVE_MS,
            llm_url: None,
            llm_api_key: None,
            llm_model: DEFAULT_AGENT_MODEL.to_owned(),
        }
    }
}

impl AgentsConfig {
    /// Pause between two answer pieces.
    pub(crate) fn token_delay(&self) -> Duration {
        Duration::from_millis(self.token_delay_ms)
    }

    /// Keepalive interval (at least 1 ms).
    pub(crate) fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.max(1))
    }

    /// One line for the start-up log: which model answers.
    pub(crate) fn model_description(&self) -> String {
        match &self.llm_url {
            Some(url) => format!(
                "OpenAI-compatible model {} at {}",
                self.llm_model,
                url.as_str().trim_end_matches('/')
            ),
            None => {
                "the offline extractive model (deterministic; quotes the run's context)".to_owned()
            }
        }
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agents: AgentsConfig,
    }

    #[test]
    fn clap_defaults_match_the_embedding_default() {
        let parsed = Cli::parse_from(["quire-sandbox"]).agents;
        let built = AgentsConfig::default();
        assert!(!parsed.allow_loopback_tool_endpoints);
        assert_eq!(parsed.token_delay_ms, built.token_delay_ms);
        assert_eq!(parsed.keepalive_ms, built.keepalive_ms);
        assert_eq!(parsed.llm_model, built.llm_model);
        assert!(parsed.llm_url.is_none());
    }

    #[test]
    fn the_loopback_flag_is_a_switch() {
        let parsed = Cli::parse_from(["quire-sandbox", "--allow-loopback-tool-endpoints"]).agents;
        assert!(parsed.allow_loopback_tool_endpoints);
    }

    #[test]
    fn the_start_up_line_names_the_model() {
        let mut config = AgentsConfig::default();
        assert!(
            config
                .model_description()
                .starts_with("the offline extractive model")
        );
        config.llm_url = Some(url::Url::parse("https://api.example.com/v1/").unwrap());
        config.llm_model = "m".to_owned();
        assert_eq!(
            config.model_description(),
            "OpenAI-compatible model m at https://api.example.com/v1"
        );
    }
}
