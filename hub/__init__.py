"""The composition root: settings, the web app, the CLI, the API and the job runner."""
