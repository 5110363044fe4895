"""The portal's screens: thin views that validate, call a service and render.

One module per screen: ``listing`` (the list), ``detail`` (a token's overview and
history), ``create``, ``edit``, ``revoke``; ``base``, what they share.
"""
