"""How each report trains and evaluates its method (layer 5: may import everything but restore_lib.course)."""
