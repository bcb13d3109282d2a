// transformers.js imports sharp when it starts and uses it for images only; Strata's checks generate text.
export default function sharp() {
  throw new Error('sharp is not installed in tests/js (text only): images cannot be read here');
}
