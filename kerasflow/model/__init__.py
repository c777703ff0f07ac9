"""Model building. `registry` and `layers`/`blocks` param schemas import no TensorFlow;
`builder` imports Keras when called."""
