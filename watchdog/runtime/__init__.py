"""The running watchdog: supervision of the bot, the guard of the data, jobs, operator requests, events."""
