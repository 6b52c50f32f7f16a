//! Quire core: sign-in, user-scoped retrieval, chat, follow and uploads (grows with the core issue).
