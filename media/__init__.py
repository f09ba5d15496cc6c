"""Media relaying: RTP relay, SDP rewriting, ICE/WebRTC (a later issue)."""
