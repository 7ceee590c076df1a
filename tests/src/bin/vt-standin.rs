//! Serves the VirusTotal stand-in on 127.0.0.1 for the README's demo:
//! `vt-standin KEY` prints `http://127.0.0.1:PORT` on its first line of stdout,
//! then serves until killed.

use std::io::Write as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let key = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: vt-standin API_KEY"))?;
    let vt = aerie_tests::virustotal::StandIn::new(&key);
    let (addr, server) = aerie_tests::serve(vt.router()).await?;
    println!("http://{addr}");
    std::io::stdout().flush()?;
    server.await?;
    Ok(())
}
