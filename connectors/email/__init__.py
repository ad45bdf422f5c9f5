"""The email channel: IMAP in (aioimaplib), SMTP out (aiosmtplib).

Small modules: :mod:`config` (mailboxes), :mod:`parser` (the ``email`` package),
:mod:`guards` (auto-replies, bounces, our own mail), :mod:`threads` (references and
conversation tokens), :mod:`store` (attachments and raw mail), :mod:`imap` (connections),
:mod:`reader` (IDLE/poll, UIDVALIDITY, batches, backoff), :mod:`sender` (SMTP + Sent).
"""
