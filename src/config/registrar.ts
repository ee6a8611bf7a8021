/**
 * sip.registrar: phones and PBXs that REGISTER as USER@domain (docs/registrar.md). Route targets
 * "sip:USER@<domain>" ring the user's registered contacts.
 */
import { z } from "zod";

const hostName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*$/, 'must be a domain name like "sip.example.net"');

export const registrarUserSchema = z
  .object({
    /** The user part of the address of record (sip:USER@domain) and the digest username. */
    user: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.!~*'()&=+$,;?\/-]+$/, "must be a SIP user name: letters, digits and _.!~*'()&=+$,;?/- only"),
    tenant: z.string().min(1).max(128),
    /** Checked for length in the refinement below, which never echoes it. */
    password: z.string(),
    /** The number shown on the user's outbound calls when the phone asserts none (must be the tenant's). */
    caller_id: z.string().regex(/^\+[1-9]\d{0,14}$/, 'must be an E.164 number like "+15125550100"').optional(),
  })
  .strict();

export const registrarSchema = z
  .object({
    domain: hostName,
    users: z.array(registrarUserSchema).default([]),
    /** A non-zero expiry below this gets 423 Interval Too Brief with Min-Expires. */
    min_expires: z.number().int().min(1).max(86_400).default(60),
    /** Longer expiries are shortened to this. */
    max_expires: z.number().int().min(1).max(86_400).default(3600),
    /** Expiry of a contact that names none (no expires parameter, no Expires header). */
    default_expires: z.number().int().min(1).max(86_400).default(3600),
    /** Digest realm of the challenges; default: the domain. */
    realm: z.string().min(1).max(128).regex(/^[^"\\]+$/, "must have no quotes or backslashes").optional(),
    /**
     * Where the other edges reach this one ("sip:IP:PORT;transport=udp|tcp|tls", an address of one
     * of its listeners): a call to a phone registered here that arrives at another edge is sent
     * here and goes out over the phone's flow. Default: the listener the REGISTER came in on.
     */
    edge_uri: z
      .string()
      .regex(/^sip:(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}(;transport=(udp|tcp|tls))?$/, 'must be like "sip:10.0.0.1:5060;transport=udp" (an IP address and port of one of this edge\'s listeners)')
      .optional(),
    /** Contacts one user may have registered at once. */
    max_contacts: z.number().int().min(1).max(100).default(10),
    /** Wrong passwords from one source for one user (and 4x that over all users) lock it out for duration_s. */
    lockout: z
      .object({
        max_failures: z.number().int().positive().default(5),
        window_s: z.number().positive().default(60),
        duration_s: z.number().positive().default(300),
      })
      .strict()
      .default({ max_failures: 5, window_s: 60, duration_s: 300 }),
    /**
     * Users place outbound calls as customers of their tenant (docs/registrar.md, "Calls from
     * registered users"); absent: INVITEs from users are refused like any unknown source.
     */
    calls: z
      .object({
        /** How dialled numbers without "+" are read (as sip.customers[].country_code / national_prefix). */
        country_code: z.string().regex(/^[1-9]\d{0,2}$/, 'must be a country calling code of 1 to 3 digits, like "1" or "44"').optional(),
        national_prefix: z.string().regex(/^\d{0,3}$/).optional(),
        /** New calls per second per user (burst: max(1, cps)). */
        cps: z.number().positive().max(1000).default(1),
        /** Calls at once per user (across edges when routes.redis is configured). */
        max_calls: z.number().int().positive().max(10_000).default(4),
        /**
         * Calls at once by all registered users together (across edges when routes.redis is
         * configured); absent: no limit over all users, only max_calls per user.
         */
        max_calls_total: z.number().int().positive().max(1_000_000).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.min_expires > r.max_expires) ctx.addIssue({ code: "custom", path: ["min_expires"], message: `must not be above max_expires (${r.max_expires})` });
    if (r.default_expires < r.min_expires || r.default_expires > r.max_expires) {
      ctx.addIssue({ code: "custom", path: ["default_expires"], message: `must be between min_expires (${r.min_expires}) and max_expires (${r.max_expires})` });
    }
    const seen = new Set<string>();
    r.users.forEach((u, i) => {
      if (u.password.length < 8 || u.password.length > 256) ctx.addIssue({ code: "custom", path: ["users", i, "password"], input: "[redacted]", message: "must be 8 to 256 characters" });
      if (seen.has(u.user)) ctx.addIssue({ code: "custom", path: ["users", i, "user"], message: `duplicate user ${JSON.stringify(u.user)}` });
      seen.add(u.user);
    });
  });

export type RegistrarConfig = z.infer<typeof registrarSchema>;
