//! The desktop app (being built).

/// Opens the LS3 Studio window.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("the app is not built yet")
}
