"""Built-in ie plugins (installed as ``ie_plugins``); each is registered through the
``ie`` entry-point group exactly like a third-party plugin."""
