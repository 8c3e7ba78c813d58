"""What people and programs watch: live view, status, report, timeline, metrics, notifications, logs."""
