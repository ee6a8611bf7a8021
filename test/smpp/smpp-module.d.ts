// The npm `smpp` package ships no types; tests use it as an untyped peer.
declare module "smpp";
