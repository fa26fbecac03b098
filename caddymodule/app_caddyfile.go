package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("webhook_gateway", parseGlobalOption)
}

// parseGlobalOption sets up the webhook_gateway app from the global
// options block:
//
//	webhook_gateway {
//		store pebble [<dir>] [{ cache_size <size> }]
//		store nats <url...> {
//			stream   <prefix>
//			replicas <n>
//			creds    <file>
//			accept_timeout <duration>
//		}
//		workers <n>
//		retain <duration>
//		orphan_after <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "webhook_gateway", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "store":
			if a.Store != nil {
				return d.Errf("store given twice")
			}
			if !d.NextArg() {
				return d.Errf("store needs a kind: pebble or nats")
			}
			s := &StoreConfig{Kind: d.Val()}
			switch s.Kind {
			case "pebble":
				if d.NextArg() {
					s.Path = d.Val()
				}
				if d.NextArg() {
					return d.Errf("store pebble takes at most one directory")
				}
				for n := d.Nesting(); d.NextBlock(n); {
					switch opt := d.Val(); opt {
					case "cache_size":
						var v string
						if err := oneArg(d, &v); err != nil {
							return err
						}
						size, err := humanize.ParseBytes(v)
						if err != nil || size < 1<<20 || size > 1<<40 {
							return d.Errf("cache_size: want a size from 1MB, such as 16MB, not %q", v)
						}
						s.CacheSize = int64(size)
					default:
						return d.Errf("unrecognized store pebble option %q", opt)
					}
				}
			case "nats":
				s.URLs = d.RemainingArgs()
				if len(s.URLs) == 0 {
					return d.Errf("store nats needs at least one server URL")
				}
				for n := d.Nesting(); d.NextBlock(n); {
					var v string
					switch opt := d.Val(); opt {
					case "stream":
						if err := oneArg(d, &s.Stream); err != nil {
							return err
						}
					case "replicas":
						if err := oneArg(d, &v); err != nil {
							return err
						}
						r, err := strconv.Atoi(v)
						if err != nil || r < 1 || r > 5 {
							return d.Errf("replicas: want 1 to 5, not %q", v)
						}
						s.Replicas = r
					case "creds":
						if err := oneArg(d, &s.CredsFile); err != nil {
							return err
						}
					case "accept_timeout":
						if err := oneArg(d, &v); err != nil {
							return err
						}
						dur, err := caddy.ParseDuration(v)
						if err != nil || dur <= 0 {
							return d.Errf("accept_timeout: want a positive duration such as 2s, not %q", v)
						}
						s.AcceptTimeout = caddy.Duration(dur)
					default:
						return d.Errf("unrecognized store nats option %q", opt)
					}
				}
			default:
				return d.Errf("store: unknown kind %q (want pebble or nats)", s.Kind)
			}
			a.Store = s
		case "workers":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1024 {
				return d.Errf("workers: want 1 to 1024, not %q", v)
			}
			a.Workers = n
		case "retain":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("retain: want a positive duration such as 72h or 30d, not %q", v)
			}
			a.Retain = caddy.Duration(dur)
		case "orphan_after":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("orphan_after: want a positive duration such as 24h, not %q", v)
			}
			a.OrphanAfter = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized webhook_gateway global option %q", d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
