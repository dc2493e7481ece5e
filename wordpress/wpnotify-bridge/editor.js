/**
 * wpnotify bridge: the block editor's "Links and trackbacks" panel.
 *
 * Plain JavaScript on WordPress's own globals (no build step, no JSX), so it runs on Debian's
 * WordPress 6.1 (wp.editPost.PluginDocumentSettingPanel) and on 6.6+ (wp.editor's). It gives
 * back the "Send trackbacks to" field that core offers only in the classic editor (bound to
 * the REST field wpnotify_to_ping, saved with the post), and shows what wpnotify did with
 * each link and trackback of the post, as the bridge's REST route serves it (rows that
 * wpnotify pushes). Failed and skipped rows get a "Send again" button.
 *
 * Everything a receiver or a URL says is shown as text (createElement escapes it), and no
 * answer from the REST routes, however broken, may throw: the panel shows one line instead.
 */
( function ( wp ) {
	'use strict';

	if ( ! wp || ! wp.plugins || ! wp.element || ! wp.data || ! wp.components || ! wp.apiFetch ) {
		return;
	}
	var Panel = ( wp.editor && wp.editor.PluginDocumentSettingPanel ) ||
		( wp.editPost && wp.editPost.PluginDocumentSettingPanel );
	if ( ! Panel ) {
		return;
	}

	var el = wp.element.createElement;
	var useState = wp.element.useState;
	var useEffect = wp.element.useEffect;
	var useRef = wp.element.useRef;
	var useSelect = wp.data.useSelect;
	var useDispatch = wp.data.useDispatch;
	var Button = wp.components.Button;
	var TextareaControl = wp.components.TextareaControl;
	/** Text in the bridge's own text domain (as its PHP), when wp.i18n is there. */
	function __( words ) {
		return wp.i18n ? wp.i18n.__( words, 'wpnotify' ) : words;
	}

	var REFRESH_MS = 20000;
	var KINDS = {
		pingback: __( 'Pingback' ),
		trackback: __( 'Trackback' ),
		webmention: __( 'Webmention' ),
		weblogupdates: __( 'Update service' ),
	};
	var BADGES = {
		sent: __( 'Sent' ),
		failed: __( 'Failed' ),
		skipped: __( 'Skipped' ),
		pending: __( 'Waiting' ),
		sending: __( 'Sending' ),
		queued: __( 'Queued' ),
	};

	/** A string, or '' for anything else (rows come from another program: trust no type). */
	function text( value ) {
		return typeof value === 'string' ? value : '';
	}

	/** ``table``'s own label for ``name`` (never an inherited "constructor"), or the name. */
	function label( table, name ) {
		return Object.prototype.hasOwnProperty.call( table, name ) ? table[ name ] : text( name );
	}

	/**
	 * An ISO time as the rest of the editor shows times (the site's time zone, named, in the
	 * user's locale, through wp.date), or the browser's own rendering where wp.date is absent.
	 */
	function localTime( iso ) {
		var when = iso ? new Date( iso ) : null;
		if ( ! when || isNaN( when.getTime() ) ) {
			return '';
		}
		try {
			var settings = wp.date.getSettings ? wp.date.getSettings() :
				wp.date.__experimentalGetSettings();
			var abbr = settings.timezone && settings.timezone.abbr;
			return wp.date.dateI18n( settings.formats.datetimeAbbreviated || 'M j, Y g:i a', iso ) +
				( abbr ? ' ' + abbr : '' );
		} catch ( e ) {
			return when.toLocaleString( document.documentElement.lang || undefined );
		}
	}

	/** What went wrong with a REST call, in one line. */
	function problem( error ) {
		var message = error && typeof error.message === 'string' ? error.message : '';
		message = message.replace( /\s+/g, ' ' ).trim();
		return message || __( 'The wpnotify bridge did not answer as expected.' );
	}

	/** The rows of a route 2 answer, each with its fields as the types the panel expects. */
	function rowsOf( answer ) {
		var rows = answer && Array.isArray( answer.rows ) ? answer.rows : null;
		if ( ! rows ) {
			throw new Error( __( 'The wpnotify bridge sent no rows (is it version 1.2?).' ) );
		}
		return rows.filter( function ( row ) {
			return row && typeof row === 'object' && typeof row.status === 'string';
		} );
	}

	function badge( row ) {
		var shown = label( BADGES, row.status );
		var retry = row.status === 'pending' ? localTime( row.next_at ) : '';
		if ( retry ) {
			/* translators: %s: when wpnotify tries again (a date and time) */
			shown = __( 'Retrying at %s' ).replace( '%s', function () {
				return retry;
			} );
		}
		return el(
			'span',
			{ className: 'wpnotify-badge wpnotify-status-' + row.status.replace( /[^a-z]/g, '' ) },
			shown
		);
	}

	function Row( props ) {
		var row = props.row;
		var when = text( row.sent_at ) || text( row.updated_at );
		var resendable = row.status === 'failed' || row.status === 'skipped';
		return el(
			'li',
			{ className: 'wpnotify-row', 'data-status': row.status },
			el(
				'div',
				{ className: 'wpnotify-row-head' },
				el( 'span', { className: 'wpnotify-kind' }, label( KINDS, row.kind ) ),
				' ',
				badge( row )
			),
			el( 'div', { className: 'wpnotify-target' }, text( row.target ) ),
			text( row.answer ) ? el( 'div', { className: 'wpnotify-answer' }, text( row.answer ) ) : null,
			when ? el( 'time', { className: 'wpnotify-time', dateTime: when }, localTime( when ) ) : null,
			resendable ?
				el( 'div', { className: 'wpnotify-actions' }, el(
					Button,
					{
						className: 'wpnotify-resend',
						variant: 'secondary',
						isSmall: true,
						disabled: props.busy,
						onClick: function () {
							props.onResend( row );
						},
					},
					__( 'Send again' )
				) ) :
				null
		);
	}

	/**
	 * Drops the trackbacks the rows show as sent from "Send trackbacks to", as a reload of the
	 * page would (the bridge moved them from to_ping to pinged when wpnotify reported them),
	 * without marking the post as changed. Only while the author has not edited the field;
	 * cosmetic, so any surprise in the editor's store leaves the field as it is.
	 */
	function forgetSent( rows ) {
		try {
			var editor = wp.data.select( 'core/editor' );
			var type = editor.getCurrentPostType();
			var id = editor.getCurrentPostId();
			var core = wp.data.select( 'core' );
			var record = core.getEntityRecord( 'postType', type, id );
			var edits = core.getEntityRecordEdits( 'postType', type, id ) || {};
			var typed = 'wpnotify_to_ping' in edits;
			if ( ! record || typeof record.wpnotify_to_ping !== 'string' || typed ) {
				return;
			}
			var sent = rows.filter( function ( row ) {
				return row.kind === 'trackback' && row.status === 'sent';
			} ).map( function ( row ) {
				return row.target;
			} );
			var urls = record.wpnotify_to_ping.split( /\s+/ ).filter( Boolean );
			var left = urls.filter( function ( url ) {
				return sent.indexOf( url ) === -1;
			} );
			if ( left.length < urls.length ) {
				wp.data.dispatch( 'core' ).receiveEntityRecords( 'postType', type,
					Object.assign( {}, record, { wpnotify_to_ping: left.join( '\n' ) } ) );
			}
		} catch ( e ) {}
	}

	/** The rows' state: loads them, reloads after each save and every 20 s, sends again. */
	function useRows( postId, saved ) {
		var state = useState( { rows: null, error: '', loading: false, busy: '' } );
		var view = state[ 0 ];
		var setView = state[ 1 ];
		var latest = useRef( 0 );
		var alive = useRef( true );

		function update( changes ) {
			if ( alive.current ) {
				setView( function ( old ) {
					return Object.assign( {}, old, changes );
				} );
			}
		}

		function load() {
			if ( ! postId ) {
				return;
			}
			var ticket = ++latest.current;
			update( { loading: true } );
			wp.apiFetch( { path: '/wpnotify/v1/posts/' + postId + '/status' } )
				.then( rowsOf )
				.then( function ( rows ) {
					if ( ticket === latest.current ) {
						update( { rows: rows, error: '', loading: false } );
						forgetSent( rows );
					}
				} )
				.catch( function ( error ) {
					if ( ticket === latest.current ) {
						update( { error: problem( error ), loading: false } );
					}
				} );
		}

		function resend( row ) {
			var key = row.kind + ' ' + row.target;
			latest.current++; // a load already under way would bring back the old status
			update( { busy: key, error: '', loading: false } );
			wp.apiFetch( {
				path: '/wpnotify/v1/posts/' + postId + '/resend',
				method: 'POST',
				data: { kind: row.kind, target: row.target },
			} )
				.then( function ( answer ) {
					var fresh = answer && typeof answer.status === 'string' ? answer : null;
					if ( ! alive.current ) {
						return;
					}
					setView( function ( old ) {
						var rows = ( old.rows || [] ).map( function ( each ) {
							if ( each.kind !== row.kind || each.target !== row.target ) {
								return each;
							}
							return fresh || Object.assign( {}, each, { status: 'queued' } );
						} );
						return Object.assign( {}, old, { rows: rows, busy: '' } );
					} );
				} )
				.catch( function ( error ) {
					update( { error: problem( error ), busy: '' } );
				} );
		}

		useEffect( function () {
			alive.current = true;
			load();
			var timer = window.setInterval( function () {
				if ( ! document.hidden ) {
					load();
				}
			}, REFRESH_MS );
			return function () {
				alive.current = false;
				window.clearInterval( timer );
			};
		}, [ postId ] );
		useEffect( function () {
			if ( saved ) {
				load();
			}
		}, [ saved ] );

		return { view: view, load: load, resend: resend };
	}

	/** How many saves have finished since the panel opened (autosaves do not count). */
	function useSaveCount() {
		var saving = useSelect( function ( select ) {
			var editor = select( 'core/editor' );
			return editor.isSavingPost() && ! editor.isAutosavingPost();
		}, [] );
		var was = useRef( false );
		var count = useState( 0 );
		useEffect( function () {
			if ( was.current && ! saving ) {
				count[ 1 ]( function ( n ) {
					return n + 1;
				} );
			}
			was.current = saving;
		}, [ saving ] );
		return count[ 0 ];
	}

	function TrackbackField() {
		var value = useSelect( function ( select ) {
			return select( 'core/editor' ).getEditedPostAttribute( 'wpnotify_to_ping' );
		}, [] );
		var editPost = useDispatch( 'core/editor' ).editPost;
		if ( typeof value !== 'string' ) {
			return null; // the post type has no such field (or an older bridge)
		}
		return el( TextareaControl, {
			className: 'wpnotify-to-ping',
			label: __( 'Send trackbacks to' ),
			help: __( 'Separate multiple URLs with spaces or new lines.' ),
			value: value,
			rows: 3,
			onChange: function ( next ) {
				editPost( { wpnotify_to_ping: next } );
			},
		} );
	}

	function Rows() {
		var postId = useSelect( function ( select ) {
			return select( 'core/editor' ).getCurrentPostId();
		}, [] );
		var rows = useRows( postId, useSaveCount() );
		var view = rows.view;
		var list;
		if ( view.rows && view.rows.length ) {
			list = el(
				'ul',
				{ className: 'wpnotify-rows' },
				view.rows.map( function ( row, index ) {
					var key = row.kind + ' ' + row.target;
					return el( Row, {
						key: key + ' ' + index,
						row: row,
						busy: view.busy === key,
						onResend: rows.resend,
					} );
				} )
			);
		} else if ( view.rows ) {
			list = el(
				'p',
				{ className: 'wpnotify-empty' },
				__( 'Nothing sent yet: wpnotify sends after publishing.' )
			);
		}
		return el(
			'div',
			{ className: 'wpnotify-status' },
			list || null,
			view.error ? el( 'p', { className: 'wpnotify-error', role: 'alert' }, view.error ) : null,
			el(
				Button,
				{
					className: 'wpnotify-refresh',
					variant: 'link',
					disabled: view.loading,
					onClick: rows.load,
				},
				__( 'Refresh' )
			)
		);
	}

	function LinksPanel() {
		return el(
			Panel,
			{ name: 'wpnotify-links', title: __( 'Links and trackbacks' ), className: 'wpnotify-panel' },
			el( TrackbackField ),
			el( Rows )
		);
	}

	wp.plugins.registerPlugin( 'wpnotify', { render: LinksPanel, icon: 'admin-links' } );
} )( window.wp );
