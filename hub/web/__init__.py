"""The managers' inbox in the browser: a server-rendered shell, static modules, i18n."""
