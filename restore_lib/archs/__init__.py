"""One module per architecture.

Nothing is imported here on purpose: ``restore_lib.models`` maps registry names
to ``"module:Class"`` strings and imports a module only when that model is
built, so a problem in one architecture never breaks the others.
"""
