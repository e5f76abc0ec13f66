"""The social layer: a user is a Hyperdrive holding ``profile.json`` and, while hosting,
``session.json`` (seed: "Social peer dat archive"); friends are other users' archives, followed
live; the directory answers "which friends host a session right now".

Records (:mod:`~hyperlobby.social.profile`, :mod:`~hyperlobby.social.session`) and the directory
(:mod:`~hyperlobby.social.directory`) are sans-IO; :mod:`~hyperlobby.social.identity` keeps a user's
archive in a home directory and :mod:`~hyperlobby.social.node` runs the long-lived node.
"""

from hyperlobby.social.directory import Directory, FriendView, Problem, SessionView
from hyperlobby.social.profile import PROFILE_PATH, Profile
from hyperlobby.social.session import SESSION_PATH, Freshness, Session, staleness

__all__ = [
    "PROFILE_PATH",
    "SESSION_PATH",
    "Directory",
    "Freshness",
    "FriendView",
    "Problem",
    "Profile",
    "Session",
    "SessionView",
    "staleness",
]
