"""Parameter schemas of the registered layer and block types (TF-free).

Importing a module here registers its types in `kerasflow.spec.registry`;
`kerasflow.model` builds them with Keras.
"""
