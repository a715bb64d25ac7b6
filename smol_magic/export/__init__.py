"""A run as an artefact: notebook and script export, recorded and replayed model replies."""
