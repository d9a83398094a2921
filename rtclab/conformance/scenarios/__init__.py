"""The scenarios, one module per web-platform-tests ``webrtc/`` file they follow.

Importing this package registers every scenario in
:data:`rtclab.conformance.core.SCENARIOS` (module order, then definition order,
is the table's order).
"""

from importlib import import_module

#: The modules, in table order; each names the wpt file it follows in its docstring.
MODULES = (
    "ice_connection_state",
    "connection_state",
    "ice_gathering_state",
    "add_ice_candidate",
    "on_negotiation_needed",
    "set_remote_description_answer",
    "set_remote_description_rollback",
    "set_local_description_rollback",
    "perfect_negotiation",
    "restart_ice",
    "ice_transport_policy",
    "remove_track",
    "ontrack",
    "rtp_sender_replace_track",
    "close",
)

for _name in MODULES:
    import_module(f"{__name__}.{_name}")
