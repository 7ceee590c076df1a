//! Serves every stand-in the enrichment-only playbook talks to, for the
//! demo: `standins DIR` writes their secrets under DIR, prints the
//! `aerie.toml` sections granting each plugin its stand-in, then a line
//! `# ready`, and serves until killed.

use std::io::Write as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: standins DIR"))?;
    let stand_ins = aerie_tests::enrichment::StandIns::start(std::path::Path::new(&dir)).await?;
    println!("{}# ready", stand_ins.config);
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
