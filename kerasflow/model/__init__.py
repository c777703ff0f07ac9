"""Model building with Keras: the builder, kerasflow's Keras layers and the
build functions of blocks. Node schemas and the registry live in
`kerasflow.spec` (TF-free); this package imports them, never the reverse."""
