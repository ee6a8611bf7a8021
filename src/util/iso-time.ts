/**
 * `new Date(t).toISOString()` of epoch milliseconds, the part up to the seconds built once per
 * second: no Date object and toISOString for each time written in the same second (log lines,
 * call records). Each caller keeps its own cache of the last second.
 */
export function isoCache(): (t: number) => string {
  let sec = Number.NaN;
  let prefix = "";
  return (t: number): string => {
    if (!Number.isInteger(t)) return new Date(t).toISOString();
    const s = Math.floor(t / 1000);
    if (s !== sec) {
      const iso = new Date(t).toISOString();
      // years outside 0000-9999 are written with a sign and six digits: no shortcut for those
      if (iso.length !== 24) return iso;
      sec = s;
      prefix = iso.slice(0, 20);
    }
    const ms = t - s * 1000;
    return prefix + (ms < 10 ? "00" : ms < 100 ? "0" : "") + ms + "Z";
  };
}
