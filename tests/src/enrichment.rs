//! Every service the enrichment-only playbook talks to, each stand-in on its
//! own 127.0.0.1 port, and the `aerie.toml` lines granting each plugin its
//! origin and credential — for the end-to-end test and the demo alike.

use std::path::Path;
use std::sync::Arc;

use crate::{cape, elastic, jira, rdap, safebrowsing, shodan, virustotal};

/// The stand-ins, serving until dropped.
pub struct StandIns {
    pub jira: Arc<jira::StandIn>,
    pub cape: Arc<cape::StandIn>,
    pub shodan: Arc<shodan::StandIn>,
    pub siem: Arc<elastic::StandIn>,
    /// `[plugins.NAME]` sections for aerie.toml.
    pub config: String,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

impl StandIns {
    /// Starts them; each secret is written to a file in `secrets`, which the
    /// config names (a secret never stands in the config itself).
    pub async fn start(secrets: &Path) -> std::io::Result<StandIns> {
        let vt = virustotal::StandIn::new("vt-key-0123456789");
        let shodan = shodan::StandIn::new("shodan-key-0123456789");
        let safebrowsing = safebrowsing::StandIn::new("sb-key-0123456789");
        let cape = cape::StandIn::new("cape-token-0123456789", 1);
        let jira = jira::StandIn::cloud("soc@customer.example", "jira-token-0123456789");
        let siem = elastic::StandIn::new("siem-key-0123456789");
        let grants = [
            (
                "virustotal",
                vt.router(),
                Some(("api_key", "vt-key-0123456789")),
                "",
            ),
            ("rdap", rdap::StandIn::new().router(), None, ""),
            (
                "shodan",
                shodan.router(),
                Some(("api_key", "shodan-key-0123456789")),
                "",
            ),
            (
                "safebrowsing",
                safebrowsing.router(),
                Some(("api_key", "sb-key-0123456789")),
                "",
            ),
            (
                "cape",
                cape.router(),
                Some(("api_token", "Token cape-token-0123456789")),
                "",
            ),
            (
                "jira",
                jira.router(),
                Some(("api_token", "soc@customer.example:jira-token-0123456789")),
                ", project = \"SOC\"",
            ),
            (
                "elastic",
                siem.router(),
                Some(("api_key", "ApiKey siem-key-0123456789")),
                "",
            ),
        ];
        let mut config = String::new();
        let mut servers = Vec::new();
        for (plugin, router, credential, settings) in grants {
            let (addr, server) = crate::serve(router).await?;
            servers.push(server);
            let origin = format!("http://{addr}");
            config.push_str(&format!(
                "[plugins.{plugin}]\nsettings = {{ base_url = {origin:?}{settings} }}\nallow = [{origin:?}]\n"
            ));
            if let Some((name, secret)) = credential {
                let file = secrets.join(format!("{plugin}.secret"));
                std::fs::write(&file, secret)?;
                config.push_str(&format!(
                    "credentials.{name} = {{ file = {:?} }}\n",
                    file.display().to_string()
                ));
            }
        }
        Ok(StandIns {
            jira,
            cape,
            shodan,
            siem,
            config,
            servers,
        })
    }
}
