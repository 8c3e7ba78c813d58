"""Run options: the settings table, config files and the environment, durations and sizes."""
