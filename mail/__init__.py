"""The backend: account store on shared storage, mailboxes, SMTP, POP3, IMAP (later issues)."""
