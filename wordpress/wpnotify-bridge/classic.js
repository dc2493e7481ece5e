/**
 * wpnotify bridge, classic editor: the "Send again" buttons of the "Links and trackbacks
 * (wpnotify)" meta box. Plain JavaScript on WordPress's globals, no build step. wp.apiFetch
 * carries the REST nonce; the bridge checks it and the user's right to edit the post.
 * Values are written with textContent only: they come from receivers' answers.
 */
( function () {
	'use strict';

	var LABELS = { queued: 'Queued', sent: 'Sent', failed: 'Failed', skipped: 'Skipped',
		pending: 'Waiting', sending: 'Sending' };

	function setStatus( row, status ) {
		var badge = row.querySelector( '.wpnotify-badge' );
		if ( badge ) {
			badge.textContent = Object.prototype.hasOwnProperty.call( LABELS, status ) ?
				LABELS[ status ] : status;
			badge.className = 'wpnotify-badge wpnotify-status-' + status.replace( /[^a-z]/g, '' );
		}
	}

	function sendAgain( button ) {
		var row = button.closest( '.wpnotify-row' );
		if ( ! row || ! window.wp || ! window.wp.apiFetch ) {
			return;
		}
		button.disabled = true;
		window.wp.apiFetch( {
			path: '/wpnotify/v1/posts/' + encodeURIComponent( row.dataset.post ) + '/resend',
			method: 'POST',
			data: { kind: row.dataset.kind, target: row.dataset.target },
		} ).then( function ( answer ) {
			setStatus( row, answer && answer.status ? String( answer.status ) : 'queued' );
			button.remove();
		}, function ( error ) {
			button.disabled = false;
			var note = row.querySelector( '.wpnotify-answer' );
			if ( note ) {
				note.textContent = 'Send again failed: ' + ( error && error.message ? error.message : 'no answer' );
			}
		} );
	}

	document.addEventListener( 'click', function ( event ) {
		var button = event.target.closest && event.target.closest( '#wpnotify-links .wpnotify-resend' );
		if ( button ) {
			event.preventDefault();
			sendAgain( button );
		}
	} );
}() );
