"""The fetcher: TAB client, scheduler, the per-race pipeline and the daily baseline."""
