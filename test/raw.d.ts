// A migration's SQL as text (Vite's `?raw`): tests run a backfill statement again, as operators may.
declare module "*.sql?raw" {
  const text: string;
  export default text;
}
